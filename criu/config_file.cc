#include "criu/config_file.h"

#include <cctype>

namespace ckpt {
namespace {

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

Result<std::vector<ConfigLine>> ParseConfigText(const std::string& text, const std::string& file) {
  std::vector<ConfigLine> out;
  int lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    lineno++;
    std::string where = file + ":" + std::to_string(lineno);
    // Words: bare ones end at whitespace or "#"; a quoted one may hold both.
    std::vector<std::string> words;
    size_t i = 0;
    for (;;) {
      while (i < line.size() && Space(line[i])) i++;
      if (i >= line.size() || line[i] == '#') break;
      std::string w;
      if (line[i] == '"') {
        i++;
        bool closed = false;
        while (i < line.size()) {
          if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '"') {
            w += '"';
            i += 2;
            continue;
          }
          if (line[i] == '"') {
            closed = true;
            i++;
            break;
          }
          w += line[i++];
        }
        if (!closed) return Error(where + ": unterminated quote");
        if (i < line.size() && !Space(line[i]) && line[i] != '#')
          return Error(where + ": text right after a closing quote");
      } else {
        while (i < line.size() && !Space(line[i]) && line[i] != '#') {
          if (line[i] == '"') return Error(where + ": a quote inside a word");
          w += line[i++];
        }
      }
      words.push_back(std::move(w));
    }
    if (words.empty()) {
      if (nl == text.size()) break;
      continue;
    }
    if (words.size() > 2)
      return Error(where + ": one option per line, with at most one value (\"" + words[0] +
                   "\" has " + std::to_string(words.size() - 1) + "; quote a value with spaces)");
    std::string name = words[0];
    if (name.rfind("--", 0) == 0)
      return Error(where + ": write options without the leading \"--\" (" + name.substr(2) + ")");
    if (name.empty() || name[0] == '-' || !isalpha(static_cast<unsigned char>(name[0])))
      return Error(where + ": \"" + name + "\" is not a long option name");
    ConfigLine l{lineno, name, words.size() == 2, words.size() == 2 ? words[1] : ""};
    out.push_back(std::move(l));
    if (nl == text.size()) break;
  }
  return out;
}

}  // namespace ckpt
