// CRIU's dump/restore options ckpt does not implement (yet). Each is known
// by name, so `ckpt dump --NAME ...` fails at parsing, before anything is
// touched, with "--NAME is not supported yet" and the reason, instead of
// the generic "unknown option". criu/options.cc adds them to its getopt
// table; tests run every name (test/zdtm/errors: "refused-options").
#pragma once

#include <cstddef>

namespace ckpt {

struct RefusedOption {
  const char* name;  // long name, without "--"
  bool has_arg;      // CRIU's option takes a value (so a value is consumed)
  char short_name;   // CRIU's one-letter form, or 0
  const char* why;   // appended to the message, after ": "
};

// The whole list, and its length.
const RefusedOption* RefusedOptions();
size_t NumRefusedOptions();

}  // namespace ckpt
