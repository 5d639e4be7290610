// zdtm-errors, incremental chains (criu/mem_track.h, criu/page_chain.h):
// a pre-dump alone, a parent of another process, a parent missing at dump
// or gone before restore: refused, the victim untouched, no tracking left.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "errors_checks.h"
#include "errors_lib.h"
#include "zdtm.h"

namespace fs = std::filesystem;
using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

namespace {

// Incremental chains: the memory trackers pre-dumps leave (ckpt-memtrack,
// reparented to us) exit once their tree's root is gone: reap them.
void reap_trackers() {
  for (int i = 0; i < 500; i++) {
    bool any = false;
    for (pid_t p : our_children()) {
      if (read_text("/proc/" + std::to_string(p) + "/comm").rfind("ckpt-memtrack", 0) != 0)
        continue;
      any = true;
      if (proc_state(p) == 'Z') waitpid(p, nullptr, 0);
    }
    if (!any) return;
    usleep(20000);
  }
  throw Fail("a memory tracker did not exit after its process did");
}

bool write_tracked(pid_t pid) {
  return read_text("/proc/" + std::to_string(pid) + "/smaps").find(" uw") != std::string::npos;
}

Ckpt step(const std::string& dir, const std::string& name, const std::string& cmd, pid_t pid,
          const std::string& img, const std::string& parent) {
  std::vector<std::string> a = {cmd, "-t", std::to_string(pid), "-D", img, "-o", name + ".log",
                                "-v4"};
  if (!parent.empty()) a.insert(a.end(), {"--prev-images-dir", parent});
  return ckpt(dir, name, a, {img + "/" + name + ".log"});
}

}  // namespace

void RunChainChecks() {
  // ---- incremental chains (criu/mem_track.h, criu/page_chain.h) ----
  check("restore-pre-dump-alone", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string d1 = dir + "/d1";
    Ckpt r = step(dir, "pre-dump", "pre-dump", h.pid, d1, "");
    if (!r.ok()) throw Fail("setup: pre-dump failed: " + r.describe() + "\n" + indent(r.all()));
    r = ckpt(dir, "restore", {"restore", "-D", d1, "-d", "-o", "restore.log", "-v4"},
             {d1 + "/restore.log"});
    expect_refused(r, "restore of a pre-dump alone");
    if (r.all().find("is a pre-dump") == std::string::npos)
      throw Fail("the error does not say it is a pre-dump\n" + indent(r.all()));
    expect_alive(h, "after the refused restore");
    finish_helper(h);
    reap_trackers();
  });

  // A step whose parent is a pre-dump of another process: refused at dump
  // (the victim untouched, no tracking added) and, with the link changed
  // behind ckpt's back, at restore (nothing left running).
  check("chain-of-another-process", [](const std::string& dir) {
    Helper a = start_helper("same_pid", dir + "/a");
    Helper b = start_helper("same_pid", dir + "/b");
    std::string da = dir + "/da", db = dir + "/db";
    Ckpt r = step(dir, "pre-dump-a", "pre-dump", a.pid, da, "");
    if (!r.ok()) throw Fail("setup: pre-dump of a failed\n" + indent(r.all()));
    std::string maps_b = read_text("/proc/" + std::to_string(b.pid) + "/maps");
    for (const char* cmd : {"pre-dump", "dump"}) {
      std::string img = dir + "/b-" + cmd;
      r = step(dir, std::string(cmd) + "-b", cmd, b.pid, img, "../da");
      expect_refused(r, std::string(cmd) + " of pid " + std::to_string(b.pid) +
                            " with a parent of pid " + std::to_string(a.pid));
      if (!mentions_number(r.output, a.pid) || !mentions_number(r.output, b.pid))
        throw Fail("the error does not name both pids\n" + indent(r.output));
      expect_alive(b, std::string("after the refused ") + cmd);
      if (write_tracked(b.pid)) throw Fail(std::string("the refused ") + cmd + " left uffd-wp");
      if (read_text("/proc/" + std::to_string(b.pid) + "/maps") != maps_b)
        throw Fail(std::string("the refused ") + cmd + " changed the victim's mappings");
      if (fs::exists(img + "/inventory.img") || fs::exists(img + "/parent"))
        throw Fail(std::string("the refused ") + cmd + " left a parent link or an inventory");
    }
    // A good chain of a (pre-dump, dump), then its parent swapped for b's.
    r = step(dir, "pre-dump-b", "pre-dump", b.pid, db, "");
    if (!r.ok()) throw Fail("setup: pre-dump of b failed\n" + indent(r.all()));
    std::string d2 = dir + "/d2";
    r = step(dir, "dump-a", "dump", a.pid, d2, "../da");
    if (!r.ok()) throw Fail("setup: dump of a failed\n" + indent(r.all()));
    int st;
    if (!wait_exit(a.pid, 10, &st)) throw Fail("setup: the dump did not kill a");
    fs::remove(d2 + "/parent");
    fs::create_directory_symlink("../db", d2 + "/parent");
    r = ckpt(dir, "restore", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    expect_refused(r, "restore of a chain whose parent is another process's");
    if (r.all().find("another process") == std::string::npos)
      throw Fail("the error does not say the chain is of another process\n" + indent(r.all()));
    expect_no_pid(a.pid, "the refused restore");
    // The right parent back: it restores.
    fs::remove(d2 + "/parent");
    fs::create_directory_symlink("../da", d2 + "/parent");
    r = ckpt(dir, "restore-good", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    if (!r.ok()) throw Fail("restore of the right chain failed\n" + indent(r.all()));
    track_pid(a.pid);
    expect_alive(a, "after the restore");
    finish_helper(a);
    finish_helper(b);
    reap_trackers();
  });

  // The parent missing at dump (a clear error, victim untouched) and gone
  // before restore (refused, nothing left).
  check("chain-parent-missing", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    Ckpt r = step(dir, "dump-nowhere", "dump", h.pid, dir + "/dx", "../no-such-dir");
    expect_refused(r, "dump with a missing parent");
    if (r.output.find("no-such-dir") == std::string::npos)
      throw Fail("the error does not name the missing parent\n" + indent(r.output));
    expect_alive(h, "after the refused dump");
    std::string d1 = dir + "/d1", d2 = dir + "/d2";
    r = step(dir, "pre-dump", "pre-dump", h.pid, d1, "");
    if (!r.ok()) throw Fail("setup: pre-dump failed\n" + indent(r.all()));
    r = step(dir, "dump", "dump", h.pid, d2, "../d1");
    if (!r.ok()) throw Fail("setup: dump failed\n" + indent(r.all()));
    int st;
    if (!wait_exit(h.pid, 10, &st)) throw Fail("setup: the dump did not kill the victim");
    fs::remove_all(d1);
    r = ckpt(dir, "restore", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    expect_refused(r, "restore with the parent images gone");
    if (r.all().find("parent") == std::string::npos)
      throw Fail("the error does not name the parent images\n" + indent(r.all()));
    expect_no_pid(h.pid, "the refused restore");
    reap_trackers();
  });

}
