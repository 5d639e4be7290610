// Action scripts and RPC notifications (the contract is in action_hooks.h).
#include "criu/action_hooks.h"

#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/log.h"
#include "criu/options.h"

extern char** environ;

namespace ckpt {
namespace {

// CRIU's environment for action scripts: the point's name, the image
// directory and, once the tree's root exists, its real pid. The program is
// run with no arguments but its own path, ckpt's stdio, and ckpt waits.
std::vector<std::string> ScriptEnv(const Options& o, const ActionEvent& e) {
  std::vector<std::string> env;
  for (char** p = environ; p && *p; p++) {
    std::string v = *p;
    if (v.rfind("CRTOOLS_SCRIPT_ACTION=", 0) == 0 || v.rfind("CRTOOLS_IMAGE_DIR=", 0) == 0 ||
        v.rfind("CRTOOLS_INIT_PID=", 0) == 0)
      continue;
    env.push_back(std::move(v));
  }
  env.push_back(std::string("CRTOOLS_SCRIPT_ACTION=") + ActionName(e.action));
  env.push_back("CRTOOLS_IMAGE_DIR=" + o.images_dir);
  if (e.pid > 0) env.push_back("CRTOOLS_INIT_PID=" + std::to_string(e.pid));
  return env;
}

Status RunScript(const std::string& path, const std::vector<std::string>& env, const char* point) {
  std::vector<char*> envp;
  for (const std::string& v : env) envp.push_back(const_cast<char*>(v.c_str()));
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
  pid_t pid = fork();
  if (pid < 0) return Error::Errno(std::string(point) + ": action script " + path + ": fork");
  if (pid == 0) {
    execve(path.c_str(), argv, envp.data());
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR)
      return Error::Errno(std::string(point) + ": action script " + path + ": waitpid");
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return Ok();
  std::string how = WIFEXITED(st) ? "exited with " + std::to_string(WEXITSTATUS(st))
                                  : "was killed by signal " + std::to_string(WTERMSIG(st));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127) how += " (not executable or not found?)";
  return Error(std::string(point) + ": action script " + path + " " + how);
}

}  // namespace

const char* ActionName(Action a) {
  switch (a) {
    case Action::kPreDump:
      return "pre-dump";
    case Action::kNetworkLock:
      return "network-lock";
    case Action::kPostDump:
      return "post-dump";
    case Action::kPreRestore:
      return "pre-restore";
    case Action::kSetupNamespaces:
      return "setup-namespaces";
    case Action::kPostSetupNamespaces:
      return "post-setup-namespaces";
    case Action::kNetworkUnlock:
      return "network-unlock";
    case Action::kPostRestore:
      return "post-restore";
    case Action::kPreResume:
      return "pre-resume";
    case Action::kPostResume:
      return "post-resume";
    case Action::kOrphanPtsMaster:
      return "orphan-pts-master";
  }
  return "?";
}

Status RunAction(const Options& o, const ActionEvent& e) {
  const char* point = ActionName(e.action);
  if (!o.action_scripts.empty()) {
    LOG_DBG(std::string("running action scripts at ") + point);
    std::vector<std::string> env = ScriptEnv(o, e);
    for (const std::string& s : o.action_scripts) TRY(RunScript(s, env, point));
  }
  if (o.notify) {
    Status s = o.notify(e);
    if (!s.ok()) return std::move(s.error().Context(point));
  }
  return Ok();
}

}  // namespace ckpt
