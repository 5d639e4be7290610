// zdtm-errors, restores that must be refused cleanly: damaged, truncated,
// forged or incomplete images (the error names the file), a pid or a port
// in use, lazy restores without their daemon or source. Nothing of the tree
// is left behind, and the undamaged image restores.
//
// The image-damage checks rely on the image layout of images/image_types.h:
// core-PID.img / mm-PID.img, two u32 magics, then (u32 length, message).
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

// The good image restore checks damage copies of.
struct GoodImage {
  std::string error;  // setup failure, if any
  std::string dir, out;
  pid_t pid = 0;
};

GoodImage make_good_image(const std::string& name = "good",
                          const std::vector<std::string>& extra = {}) {
  GoodImage g;
  std::string base = g_workdir + "/" + name;
  fs::create_directories(base);
  try {
    Helper h = start_helper("same_pid", base + "/run");
    g.pid = h.pid;
    g.out = h.out;
    g.dir = base + "/img";
    fs::create_directories(g.dir);
    std::vector<std::string> args = {"dump", "-t", std::to_string(h.pid), "-D", g.dir,
                                     "-o",   "dump.log", "-v4"};
    args.insert(args.end(), extra.begin(), extra.end());
    Ckpt r = ckpt(base, "dump", args, {g.dir + "/dump.log"});
    if (!r.ok()) throw Fail("dump of same_pid failed: " + r.describe() + "\n" + indent(r.all()));
    int status;
    if (!wait_exit(h.pid, 10, &status) || !WIFSIGNALED(status))
      throw Fail("dump did not kill pid " + std::to_string(h.pid));
  } catch (const Fail& f) {
    g.error = std::string("setup (good dump): ") + f.what();
  }
  kill_all_children();
  return g;
}

std::string image_file(const GoodImage& g, const std::string& img, const char* type) {
  std::string path = img + "/" + type + "-" + std::to_string(g.pid) + ".img";
  if (!fs::exists(path) || fs::file_size(path) <= 12) {
    std::string names;
    for (const auto& e : fs::directory_iterator(img)) names += " " + e.path().filename().string();
    throw Fail("setup: no usable " + path + "; image files:" + names);
  }
  return path;
}

void overwrite(const std::string& path, size_t off, const std::string& bytes) {
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0 || pwrite(fd, bytes.data(), bytes.size(), off) != static_cast<ssize_t>(bytes.size()))
    throw Fail("setup: cannot damage " + path);
  close(fd);
}

// Copies the good image, damages the copy, restores it: must be refused
// (naming `file`, when given, in what the user sees).
void check_bad_restore(const GoodImage& g, const std::string& name,
                       const std::function<void(const std::string& img)>& damage,
                       const std::string& file = "") {
  check(name, [&](const std::string& dir) {
    if (!g.error.empty()) throw Fail(g.error);
    std::string img = dir + "/img";
    fs::remove_all(img);
    fs::copy(g.dir, img, fs::copy_options::recursive);
    fs::remove(img + "/dump.log");
    damage(img);
    Ckpt r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    expect_refused(r, "restore");
    if (!file.empty() && r.output.find(file) == std::string::npos)
      throw Fail("the refusal does not name " + file + "\n" + indent(r.output));
    expect_no_pid(g.pid, "the failed restore");
  });
}

void append(const std::string& path, const std::string& bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    throw Fail("setup: cannot append to " + path);
  close(fd);
}


// checksums.img of `img` rewritten so its entry for `name` matches the
// file as it is now: damage the checksum cannot see, left to the reader
// of the file's own format (--compress: images/zpages.h).
void reseal_raw(const std::string& img, const std::string& name) {
  std::string data = read_text(img + "/" + name);
  std::string sealed = zdtm_seal_image(data);
  uint32_t crc;
  memcpy(&crc, sealed.data() + data.size() + 4, 4);
  std::string list = read_text(img + "/checksums.img");
  if (list.size() < 8 + 16) throw Fail("setup: no checksums.img in " + img);
  std::string body = list.substr(0, list.size() - 16);
  auto varint = [](uint64_t v) {
    std::string o;
    while (v >= 0x80) o += char(v | 0x80), v >>= 7;
    return o + char(v);
  };
  std::string out = body.substr(0, 8);
  bool found = false;
  for (size_t at = 8; at + 4 <= body.size();) {
    uint32_t len;
    memcpy(&len, body.data() + at, 4);
    std::string rec = body.substr(at + 4, len);
    at += 4 + len;
    // ChecksumEntry: 1 name, 2 size, 3 crc32c, 4 encoding (1 = ZPAGES).
    if (rec.size() > 2 && rec[0] == 0x0a && rec.substr(2, size_t(rec[1])) == name) {
      rec = std::string("\x0a", 1) + char(name.size()) + name + "\x10" + varint(data.size()) +
            "\x18" + varint(crc) + std::string("\x20\x01", 2);
      found = true;
    }
    uint32_t l = uint32_t(rec.size());
    out += std::string(reinterpret_cast<const char*>(&l), 4) + rec;
  }
  if (!found) throw Fail("setup: " + name + " is not in " + img + "/checksums.img");
  std::ofstream(img + "/checksums.img", std::ios::binary | std::ios::trunc) << zdtm_seal_image(out);
}

}  // namespace

void RunRestoreChecks() {
  const GoodImage good = make_good_image();
  check("restore-empty-dir", [&](const std::string& dir) {
    fs::create_directories(dir + "/empty");
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", dir + "/empty", "-d", "--pidfile", dir + "/pidfile"});
    expect_refused(r, "restore from an empty dir");
    if (good.error.empty()) expect_no_pid(good.pid, "the failed restore");
  });
  auto truncate_half = [&good](const char* type) {
    return [&good, type](const std::string& img) {
      std::string f = image_file(good, img, type);
      fs::resize_file(f, fs::file_size(f) / 2);
    };
  };
  check_bad_restore(good, "restore-truncated-core", truncate_half("core"));
  check_bad_restore(good, "restore-truncated-mm", truncate_half("mm"));
  check_bad_restore(good, "restore-bad-magic", [&](const std::string& img) {
    overwrite(image_file(good, img, "core"), 0, "XXXX");
  });
  check_bad_restore(good, "restore-huge-record-length", [&](const std::string& img) {
    overwrite(image_file(good, img, "mm"), 8, std::string("\xf0\xff\xff\x7f", 4));
  });
  check_bad_restore(good, "restore-garbage-record", [&](const std::string& img) {
    std::string f = image_file(good, img, "core");
    overwrite(f, 12, std::string(fs::file_size(f) - 12, '\xff'));
  });
  // Damage a parse cannot see (images/image_check.h): refused by checksum,
  // naming the file.
  std::string pid_s = std::to_string(good.pid);
  check_bad_restore(good, "restore-zeroed-range-in-core", [&](const std::string& img) {
    overwrite(image_file(good, img, "core"), 20, std::string(24, '\0'));
  }, "core-" + pid_s + ".img");
  check_bad_restore(good, "restore-garbage-after-core", [&](const std::string& img) {
    append(image_file(good, img, "core"), "garbage after the last record");
  }, "core-" + pid_s + ".img");
  check_bad_restore(good, "restore-garbage-after-fs", [&](const std::string& img) {
    append(image_file(good, img, "fs"), std::string(8, '\0'));
  }, "fs-" + pid_s + ".img");
  check_bad_restore(good, "restore-truncated-pages", [&](const std::string& img) {
    fs::resize_file(img + "/pages-1.img", fs::file_size(img + "/pages-1.img") - 4096);
  }, "pages-1.img");
  check_bad_restore(good, "restore-extended-pages", [&](const std::string& img) {
    append(img + "/pages-1.img", std::string(4096, '\0'));
  }, "pages-1.img");
  check_bad_restore(good, "restore-changed-page", [&](const std::string& img) {
    overwrite(img + "/pages-1.img", 100, "X");
  }, "pages-1.img");
  // --compress (images/zpages.h): a changed byte is refused by the
  // checksum list; damage the list cannot see (resealed) by the frame
  // decoder, naming the file; a forged index, too. The undamaged
  // compressed image restores (restore-good-compressed-image).
  const GoodImage zgood = make_good_image("good-z", {"--compress", "zstd"});
  check_bad_restore(zgood, "restore-compressed-changed-byte", [&](const std::string& img) {
    overwrite(img + "/pages-1.img", 40, "X");
  }, "pages-1.img: damaged");
  check_bad_restore(zgood, "restore-compressed-bad-frame", [&](const std::string& img) {
    overwrite(img + "/pages-1.img", 40, "XXXXXXXX");
    reseal_raw(img, "pages-1.img");
  }, "pages-1.img: damaged compressed pages");
  check_bad_restore(zgood, "restore-compressed-forged-size", [&](const std::string& img) {
    std::string f = img + "/pages-1.img";
    uint64_t huge = uint64_t(1) << 62;
    overwrite(f, size_t(fs::file_size(f)) - 16, std::string(reinterpret_cast<char*>(&huge), 8));
    reseal_raw(img, "pages-1.img");
  }, "pages-1.img: damaged compressed pages");
  check_bad_restore(zgood, "restore-compressed-truncated-resealed", [&](const std::string& img) {
    std::string f = img + "/pages-1.img";
    fs::resize_file(f, fs::file_size(f) - 20);
    reseal_raw(img, "pages-1.img");
  }, "pages-1.img: damaged compressed pages");
  check("restore-good-compressed-image", [&](const std::string& dir) {
    if (!zgood.error.empty()) throw Fail(zgood.error);
    std::string img = dir + "/img";
    fs::copy(zgood.dir, img, fs::copy_options::recursive);
    reseal_raw(img, "pages-1.img");  // a no-op reseal must keep it restorable
    Ckpt r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    if (!r.ok())
      throw Fail("restore of the undamaged compressed image failed: " + r.describe() + "\n" +
                 indent(r.all()));
    expect_alive(Helper{zgood.pid, zgood.out}, "after restore");
    finish_helper(Helper{zgood.pid, zgood.out});
  });
  check("dump-compress-lazy-refused", [&](const std::string& dir) {
    Ckpt r = ckpt(dir, "dump", {"dump", "-t", "1", "-D", dir + "/img", "--lazy-pages", "--port",
                                "1", "--compress", "zstd"});
    expect_refused(r, "dump --lazy-pages --compress");
    if (r.all().find("drop --compress") == std::string::npos)
      throw Fail("the refusal does not say why\n" + indent(r.all()));
    r = ckpt(dir, "restore", {"restore", "-D", dir + "/img", "--compress", "zstd"});
    expect_refused(r, "restore --compress");
    r = ckpt(dir, "dump", {"dump", "-t", "1", "-D", dir + "/img", "--compress", "lz4"});
    expect_refused(r, "dump --compress lz4");
  });
  // shm-files.img (criu/shm_files.h) naming a file outside a tmpfs, or a
  // path that climbs: refused before anything is written or created.
  auto shm_files_entry = [](const std::string& img, const std::string& path) {
    auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
    std::string m = std::string("\x08\x01\x12", 3) + char(path.size()) + path +
                    std::string("\x18\x05\x20\x80\x03\x28\x00\x30\x00", 9);
    std::string file = zdtm_seal_image(u32(0x54504b43) + u32(0x53484601) + u32(uint32_t(m.size())) + m);
    std::ofstream(img + "/shm-files.img", std::ios::binary) << file;
    std::ofstream(img + "/shm-file-1.img", std::ios::binary) << "ckpt!";
  };
  const std::string victim = g_workdir + "/shm-victim";
  check_bad_restore(good, "restore-shm-file-not-tmpfs", [&](const std::string& img) {
    shm_files_entry(img, victim);
  }, "is no longer on a tmpfs");
  check("restore-shm-file-not-tmpfs-untouched", [&](const std::string&) {
    if (fs::exists(victim)) throw Fail("the refused restore made " + victim);
  });
  check_bad_restore(good, "restore-shm-file-dotdot", [&](const std::string& img) {
    shm_files_entry(img, "/dev/shm/../" + victim.substr(1));
  }, "bad entry for");
  // A task claiming to share its parent's fd table (criu/shared_tables.h)
  // with no parent in the tree (the root): refused before anything exists.
  check_bad_restore(good, "restore-files-shared-root", [&](const std::string& img) {
    std::string f = image_file(good, img, "core");
    std::string bytes = read_text(f);
    if (bytes.size() < 12 + 16) throw Fail("setup: core image too short");
    bytes.resize(bytes.size() - 16);  // the checksum trailer, made again below
    uint32_t len;
    memcpy(&len, &bytes[8], 4);
    if (12 + size_t(len) > bytes.size()) throw Fail("setup: core image record too long");
    // TaskCoreEntry.files_shared_with_parent = true: field 25, varint.
    bytes.insert(12 + len, std::string("\xc8\x01\x01", 3));
    len += 3;
    memcpy(&bytes[8], &len, 4);
    std::ofstream(f, std::ios::binary | std::ios::trunc) << zdtm_seal_image(bytes);
  }, "shared its parent's fd table (CLONE_FILES), but it has no parent in the tree");
  // Without this the refusals above prove nothing: the same image, undamaged.
  // --lsm-profile naming an LSM this host does not run: refused before any
  // process exists, naming it (and the undamaged image then restores).
  check("restore-lsm-profile-unavailable", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string active = read_text("/sys/kernel/security/lsm");
    std::string lsm = "smack";
    for (const char* l : {"smack", "selinux", "apparmor"})
      if (active.find(l) == std::string::npos) lsm = l;
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", img, "-d", "--lsm-profile", lsm + ":ckpt-test-label"});
    expect_refused(r, "restore with --lsm-profile " + lsm);
    if (r.output.find(lsm) == std::string::npos)
      throw Fail("the error does not name " + lsm + "\n" + indent(r.output));
    expect_no_pid(good.pid, "the refused restore");
  });

  // Lazy restore (criu/lazy_pages.h): no daemon, a lazy dump that is not
  // there, a dump whose pages a lazy dump holds, a lazy dump's port taken.
  check("restore-lazy-no-daemon", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--lazy-pages"},
                  {img + "/restore.log"});
    expect_refused(r, "restore --lazy-pages without a lazy-pages daemon");
    if (r.all().find("no lazy-pages daemon") == std::string::npos)
      throw Fail("the error does not say the daemon is missing\n" + indent(r.all()));
    expect_no_pid(good.pid, "the refused lazy restore");
  });
  check("lazy-pages-source-absent", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    int port = free_port();  // nobody listens there
    Ckpt r = ckpt(dir, "lazy-pages",
                  {"lazy-pages", "-D", img, "--page-server", "--address", "127.0.0.1", "--port",
                   std::to_string(port)});
    expect_refused(r, "lazy-pages from a lazy dump that is not there");
    if (r.output.find("lazy dump at 127.0.0.1:" + std::to_string(port)) == std::string::npos)
      throw Fail("the error does not name the lazy dump\n" + indent(r.output));
    if (fs::exists(img + "/lazy-pages.sock")) throw Fail("the failed daemon left its socket");
  });
  check("restore-pages-held-by-lazy-dump", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    int held = open((img + "/lazy-pages.held").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (held < 0) throw Fail("setup: cannot mark the dump as held");  // as a lazy dump leaves it
    close(held);
    Ckpt r = ckpt(dir, "restore", {"restore", "-D", img, "-d", "-o", "restore.log", "-v4"},
                  {img + "/restore.log"});
    expect_refused(r, "an ordinary restore of a dump whose pages a lazy dump holds");
    if (r.all().find("--lazy-pages") == std::string::npos)
      throw Fail("the error does not point to --lazy-pages\n" + indent(r.all()));
    Ckpt l = ckpt(dir, "lazy-pages-local", {"lazy-pages", "-D", img});
    expect_refused(l, "a local lazy-pages daemon for pages a lazy dump holds");
    expect_no_pid(good.pid, "the refused restore");
  });
  check("dump-lazy-port-taken", [&](const std::string& dir) {
    Helper h = start_helper("bigmem", dir + "/run");
    int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (sk < 0 || bind(sk, reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(sk, 1) < 0 ||
        getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      throw Fail(std::string("setup: a listener: ") + strerror(errno));
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "--lazy-pages", "--address",
                   "127.0.0.1", "--port", std::to_string(ntohs(a.sin_port))});
    close(sk);
    expect_refused(r, "dump --lazy-pages on a port that is taken");
    if (fs::exists(img + "/inventory.img")) throw Fail("a failed dump left an inventory");
    expect_alive(h, "after the failed dump");
    finish_helper(h);
  });

  check("restore-good-image", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    if (!r.ok())
      throw Fail("restore of the undamaged image failed: " + r.describe() +
                 " (until this passes, the restore-* refusals above prove little)\n" +
                 indent(r.all()));
    expect_alive(Helper{good.pid, good.out}, "after restore");
    finish_helper(Helper{good.pid, good.out});
  });

  check("restore-pid-in-use", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4",
                   "--leave-running"},
                  {img + "/dump.log"});
    if (!r.ok())
      throw Fail("setup: dump --leave-running failed: " + r.describe() + "\n" + indent(r.all()));
    expect_alive(h, "after dump --leave-running");
    r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    expect_refused(r, "restore while pid " + std::to_string(h.pid) + " is in use");
    if (!mentions_number(r.output, h.pid))
      throw Fail("the error does not name pid " + std::to_string(h.pid) + "\n" + indent(r.output));
    expect_alive(h, "after the refused restore");
    finish_helper(h);
  });

  // A listener's port taken by another process (us) between dump and
  // restore: restore fails naming the address and port, and nothing of
  // the tree is left; once the port is free the same image restores.
  // The victim is sk_tcp_inflight's: listeners on 127.0.0.1 and ::1.
  check("restore-port-taken", [](const std::string& dir) {
    std::string run = dir + "/run", img = dir + "/img";
    fs::create_directories(run);
    fs::create_directories(img);
    Helper h{0, run + "/out.txt"};
    h.pid = start_test({g_testbin + "/sk_tcp_inflight", "--victim"}, run, h.out);
    std::string err = h.pid < 0 ? "fork failed" : wait_ready(h.pid, h.out, 60);
    if (!err.empty()) throw Fail("setup: sk_tcp_inflight --victim: " + err);
    std::string text = read_text(h.out);
    size_t at = text.find("INFO: port4 ");
    if (at == std::string::npos) throw Fail("setup: the victim printed no port\n" + indent(text));
    const int port = atoi(text.c_str() + at + 12);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    if (!r.ok()) throw Fail("setup: dump failed: " + r.describe() + "\n" + indent(r.all()));
    int status;
    if (!wait_exit(h.pid, 10, &status)) throw Fail("setup: the dump did not kill the victim");

    int taker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (taker < 0 || bind(taker, reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(taker, 1)) {
      std::string why = strerror(errno);
      if (taker >= 0) close(taker);
      throw Fail("setup: cannot take 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
    const std::vector<std::string> restore = {
        "restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"};
    r = ckpt(dir, "restore-taken", restore, {img + "/restore.log"});
    bool refused = !r.ok();
    close(taker);
    if (!refused) {
      // It runs: stop it before reporting (kill_all_children reaps it).
      throw Fail("restore succeeded while another socket listened on 127.0.0.1:" +
                 std::to_string(port) + "\n" + indent(r.all()));
    }
    expect_refused(r, "restore with the listener's port taken");
    if (r.output.find("127.0.0.1:" + std::to_string(port)) == std::string::npos)
      throw Fail("the error does not name 127.0.0.1:" + std::to_string(port) + "\n" +
                 indent(r.output));
    expect_no_pid(h.pid, "the failed restore");
    r = ckpt(dir, "restore", restore, {img + "/restore.log"});
    if (!r.ok())
      throw Fail("restore with the port free again failed: " + r.describe() + "\n" +
                 indent(r.all()));
    track_pid(h.pid);
    expect_alive(h, "after restore");
    finish_helper(h);
  });

}
