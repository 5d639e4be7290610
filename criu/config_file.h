// CRIU's configuration files: options read from files before the command
// line (or the RPC request), in CRIU's documented order:
//
//   /etc/criu/default.conf, $HOME/.criu/default.conf   (unless --no-default-config)
//   $CRIU_CONFIG_FILE                                   (when set)
//   --config FILE
//   the command line / the RPC request
//   the RPC request's config_file (RPC only: it overrides the request)
//
// A later source overrides an earlier one; repeatable options (--external,
// --inherit-fd) add up; a flag set by a file is unset with --no-FLAG.
//
// Syntax (CRIU's): one long option per line, without the leading "--",
// its value after whitespace; "#" starts a comment to the end of the line;
// a value may be in double quotes (for whitespace or "#"), where \" is a
// literal quote and every other backslash is literal. Commands (dump,
// restore, ...) and --config itself are not allowed in a file. An unknown
// option, a missing or extra value, is an error naming the file and line.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt {

struct Options;

// One option line of a file.
struct ConfigLine {
  int line;          // 1-based
  std::string name;  // without "--"
  bool has_value = false;
  std::string value;
};

// Splits `text` (the contents of `file`, named in errors) into option
// lines; checks only the syntax (quotes, words per line), not the names.
Result<std::vector<ConfigLine>> ParseConfigText(const std::string& text, const std::string& file);

// Applies one file onto o (options.cc, with the command line's parser).
// A missing file is an error unless missing_ok (the default files; the
// RPC's config_file, which CRIU ignores when it does not exist).
Status ApplyConfigFile(const std::string& path, Options& o, bool missing_ok);

// The files read before the command line or an RPC request, in order: the
// default ones unless o.no_default_config, $CRIU_CONFIG_FILE, and
// o.config_file when `with_config_file` (the command line's --config; the
// RPC applies its config_file after the request instead).
Status ApplyConfigFiles(Options& o, bool with_config_file = true);

}  // namespace ckpt
