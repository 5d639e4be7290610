#include "base/fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace ckpt::fault {
namespace {

struct Armed {
  std::string name;
  bool kill = false;
};

// CKPT_FAULT parsed once: forked restoring tasks inherit the parse.
const std::vector<struct Armed>& Parsed() {
  static const std::vector<struct Armed> parsed = [] {
    std::vector<struct Armed> out;
    const char* env = getenv("CKPT_FAULT");
    if (!env) return out;
    std::string_view s(env);
    while (!s.empty()) {
      size_t comma = s.find(',');
      std::string_view item = s.substr(0, comma);
      s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
      if (item.empty()) continue;
      struct Armed a;
      size_t colon = item.find(':');
      a.name = std::string(item.substr(0, colon));
      a.kill = colon != std::string_view::npos && item.substr(colon + 1) == "kill";
      out.push_back(a);
    }
    return out;
  }();
  return parsed;
}

const struct Armed* Find(std::string_view point) {
  for (const auto& a : Parsed())
    if (a.name == point) return &a;
  return nullptr;
}

}  // namespace

const std::vector<Point>& Points() {
  static const std::vector<Point> points = {
      {"dump-seized", "dump: every task of the tree is seized, nothing read yet"},
      {"dump-netlocked", "dump: the tree's TCP connections are locked (--tcp-established)"},
      {"infect-memfd", "dump: after the remote memfd_create of the infection"},
      {"infect-mmap", "dump: after the remote mmap of the parasite region"},
      {"infect-close", "dump: after the remote close of the memfd"},
      {"infect-started", "dump: the parasite runs and is connected"},
      {"dump-pages-mid", "dump: in the page stream, after its first batch"},
      {"dump-snapshot-taken", "dump -R: a task's copy-on-write snapshot forked, the parasite in"},
      {"dump-before-cure", "dump: pages done, the parasite still in"},
      {"dump-resumed", "dump -R: the tree runs again, pages not yet written from snapshots"},
      {"dump-before-inventory", "dump: every image written but the inventory"},
      {"restore-namespaces", "restore: ckpt is in the tree's namespaces, no task yet"},
      {"restore-root-cloned", "restore: the root task exists, not yet started"},
      {"restore-forked", "restore: a task has created its children (in the task)"},
      {"restorer-before-unmap", "restore: in the restorer blob, before it unmaps ckpt"},
      {"restorer-after-unmap", "restore: in the restorer blob, after it unmapped ckpt"},
      {"restore-before-resume", "restore: every task restored and stopped, none resumed"},
  };
  return points;
}

Status CheckEnv() {
  const char* env = getenv("CKPT_FAULT");
  if (!env) return Ok();
  std::string_view s(env);
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    if (item.empty()) continue;
    size_t colon = item.find(':');
    std::string_view name = item.substr(0, colon);
    if (colon != std::string_view::npos && item.substr(colon + 1) != "kill")
      return Error("CKPT_FAULT: " + std::string(item) + ": the only mode is :kill");
    bool known = false;
    for (const Point& p : Points()) known |= name == p.name;
    if (!known)
      return Error("CKPT_FAULT: unknown point " + std::string(name) +
                   " (`ckpt fault-points` lists them)");
  }
  return Ok();
}

bool Armed(std::string_view point) { return Find(point) != nullptr; }

bool KillMode(std::string_view point) {
  const struct Armed* a = Find(point);
  return a && a->kill;
}

bool At(std::string_view point) {
  const struct Armed* a = Find(point);
  if (!a) return false;
  if (a->kill) {
    // Said once on stderr so a test log shows where it died.
    std::string msg = "ckpt: CKPT_FAULT: killed at " + std::string(point) + "\n";
    (void)!write(STDERR_FILENO, msg.data(), msg.size());
    kill(getpid(), SIGKILL);
    _exit(128 + SIGKILL);  // the init of a pid namespace ignores its own SIGKILL
  }
  return true;
}

Error Injected(std::string_view point) {
  return Error("fault injected at " + std::string(point) + " (CKPT_FAULT)", EIO);
}

int PrintPoints() {
  for (const Point& p : Points()) printf("%-24s %s\n", p.name, p.where);
  return 0;
}

}  // namespace ckpt::fault
