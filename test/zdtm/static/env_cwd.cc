// env_cwd: setenv/putenv values (one long), chdir into a nested
// subdirectory, umask(027). Verifies getenv, getcwd, relative paths,
// umask (syscall and /proc/self/status), and that /proc/self/cmdline,
// /proc/self/environ and /proc/self/exe read the same as before.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
char g_put[] = "ZDTM_PUT=put-value with spaces";

std::string status_umask() {
  std::string s = zdtm_read_file("/proc/self/status");
  size_t p = s.find("Umask:");
  if (p == std::string::npos) return "?";
  size_t b = s.find_first_not_of(" \t", p + 6);
  return s.substr(b, s.find('\n', b) - b);
}
std::string exe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  std::string long_value;
  for (int i = 0; i < 10000; i++) long_value += static_cast<char>('a' + i % 26);
  setenv("ZDTM_SET", "set-value", 1);
  setenv("ZDTM_LONG", long_value.c_str(), 1);
  putenv(g_put);
  setenv("PATH", "/zdtm/bin:/usr/bin", 1);
  if (mkdir("sub", 0755) && errno != EEXIST) fail("mkdir sub: %s", strerror(errno));
  if (mkdir("sub/dir", 0755) && errno != EEXIST) fail("mkdir sub/dir: %s", strerror(errno));
  if (chdir("sub/dir")) fail("chdir: %s", strerror(errno));
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd: %s", strerror(errno));
  umask(027);
  const std::string cmdline = zdtm_read_file("/proc/self/cmdline");
  const std::string environ_before = zdtm_read_file("/proc/self/environ");
  const std::string exe_before = exe();

  test_ready();
  test_wait();

  auto check_env = [](const char* name, const char* want) {
    const char* v = getenv(name);
    if (!v || strcmp(v, want) != 0)
      fail("getenv(%s) = %.40s, want %.40s", name, v ? v : "(null)", want);
  };
  check_env("ZDTM_SET", "set-value");
  check_env("ZDTM_LONG", long_value.c_str());
  check_env("ZDTM_PUT", "put-value with spaces");
  check_env("PATH", "/zdtm/bin:/usr/bin");

  char now[PATH_MAX];
  if (!getcwd(now, sizeof(now))) fail("getcwd: %s", strerror(errno));
  if (strcmp(now, cwd) != 0) fail("cwd %s, want %s", now, cwd);
  std::string proc_cwd(PATH_MAX, '\0');
  ssize_t n = readlink("/proc/self/cwd", proc_cwd.data(), proc_cwd.size());
  if (n < 0 || proc_cwd.substr(0, n) != cwd) fail("/proc/self/cwd is not %s", cwd);
  struct stat st;
  if (stat("../../sub/dir", &st) || !S_ISDIR(st.st_mode))
    fail("relative path ../../sub/dir does not resolve");

  if (status_umask() != "0027")
    fail("/proc/self/status Umask %s, want 0027", status_umask().c_str());
  mode_t old = umask(022);
  if (old != 027) fail("umask %03o, want 027", old);
  umask(027);
  // A file created now gets the umask applied.
  int fd = creat("created", 0666);
  if (fd < 0 || fstat(fd, &st) || (st.st_mode & 0777) != 0640)
    fail("creat mode %03o, want 640", st.st_mode & 0777);
  close(fd);

  if (zdtm_read_file("/proc/self/cmdline") != cmdline) fail("/proc/self/cmdline changed");
  if (zdtm_read_file("/proc/self/environ") != environ_before) fail("/proc/self/environ changed");
  if (exe() != exe_before) fail("/proc/self/exe is %s, want %s", exe().c_str(), exe_before.c_str());
  pass();
}
