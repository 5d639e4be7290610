// The sub-check groups of zdtm-errors, one file each.
#pragma once

void RunDumpChecks();     // errors_dump.cc
void RunRestoreChecks();  // errors_restore.cc
void RunChainChecks();    // errors_chain.cc
