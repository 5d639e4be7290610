// Kind-specific lines of /proc/PID/fdinfo/FD (see proc(5) and the kernel's
// *_show_fdinfo functions): "eventfd-count: 5", "tfd: 3 events: 19 data: 7
// pos:0 ino:40e sdev:10", "inotify wd:1 ino:3c51a sdev:fe00000 mask:300 ...".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::files {

// The value after "key:" on the first line starting with it, trimmed;
// nullopt if there is no such line.
std::optional<std::string> FdinfoValue(const std::string& text, const std::string& key);
// Every line that starts with prefix.
std::vector<std::string> FdinfoLines(const std::string& text, const std::string& prefix);
// The "name:value" pairs of one line; a value may follow its "name:" after
// spaces. Words without a colon are skipped.
std::map<std::string, std::string> FdinfoTokens(const std::string& line);
// A whole number in the given base; an error naming `what` otherwise.
Result<uint64_t> ParseNumber(const std::string& s, int base, const std::string& what);
// Looks key up in tokens and parses it.
Result<uint64_t> TokenNumber(const std::map<std::string, std::string>& tokens,
                             const std::string& key, int base, const std::string& what);

// The path (as ckpt sees it) of inode `ino` on device `dev`, from the file
// handle an inotify or fanotify mark shows (struct file_handle, header
// included), opened through each mount of that device in pid's mount
// namespace (inotify.cc). `what` names the mark in errors.
Result<std::string> ResolveFileHandle(pid_t pid, dev_t dev, uint64_t ino,
                                      const std::string& handle, const std::string& what);

}  // namespace ckpt::files
