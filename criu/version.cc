#include "criu/version.h"

#include <string>

namespace ckpt {

const char* VersionText() {
  // Sublevel 0 is left out, as CRIU prints it ("3.19", not "3.19.0").
  static const std::string text = [] {
    std::string v =
        "Version: " + std::to_string(kCriuCompatMajor) + "." + std::to_string(kCriuCompatMinor);
    if (kCriuCompatSublevel) v += "." + std::to_string(kCriuCompatSublevel);
    return v + "\nGitID: ckpt-" + kCkptVersion + "\nckpt " + kCkptVersion +
           ": checkpoint/restore with CRIU's command line and RPC (not CRIU itself)\n";
  }();
  return text.c_str();
}

}  // namespace ckpt
