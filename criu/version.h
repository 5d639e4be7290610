// ckpt's version, and the CRIU version it answers as: tools that drive
// criu (runc, podman via go-criu, LXC) compare CRIU's version against the
// minimums of the features they use, from `criu --version` ("Version:
// X.Y[.Z]" then optionally "GitID: ...") or the RPC's VERSION request
// (major, minor, sublevel). ckpt implements the command line and protocol
// of this CRIU release as far as docs/design.md says.
#pragma once

namespace ckpt {

inline constexpr const char kCkptVersion[] = "0.1.0";
inline constexpr int kCriuCompatMajor = 3;
inline constexpr int kCriuCompatMinor = 19;
inline constexpr int kCriuCompatSublevel = 0;

// What `ckpt --version` prints: CRIU's two lines (the version as
// "Version: 3.19", the build as "GitID: ckpt-0.1.0"), then a line saying
// what this is.
const char* VersionText();

}  // namespace ckpt
