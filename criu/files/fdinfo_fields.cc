#include "criu/files/fdinfo_fields.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace ckpt::files {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

std::optional<std::string> FdinfoValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ':')
      return Trim(line.substr(key.size() + 1));
  return std::nullopt;
}

std::vector<std::string> FdinfoLines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0) out.push_back(line);
  return out;
}

std::map<std::string, std::string> FdinfoTokens(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  std::string word, pending;
  while (in >> word) {
    if (!pending.empty()) {
      out[pending] = word;
      pending.clear();
      continue;
    }
    size_t colon = word.find(':');
    if (colon == std::string::npos) continue;
    if (colon + 1 == word.size())
      pending = word.substr(0, colon);
    else
      out[word.substr(0, colon)] = word.substr(colon + 1);
  }
  return out;
}

Result<uint64_t> ParseNumber(const std::string& s, int base, const std::string& what) {
  if (s.empty()) return Error("fdinfo: empty " + what);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s.c_str(), &end, base);
  if (errno || *end != '\0' || s[0] == '-') return Error("fdinfo: bad " + what + " '" + s + "'");
  return uint64_t(v);
}

Result<uint64_t> TokenNumber(const std::map<std::string, std::string>& tokens,
                             const std::string& key, int base, const std::string& what) {
  auto it = tokens.find(key);
  if (it == tokens.end()) return Error("fdinfo: no " + key + " in " + what);
  return ParseNumber(it->second, base, what + " " + key);
}

}  // namespace ckpt::files
