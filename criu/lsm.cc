#include "criu/lsm.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <sstream>

#include "base/io.h"
#include "base/log.h"
#include "criu/task_images.h"

namespace ckpt {
namespace {

constexpr long kSysLsmListModules = 461;  // x86_64, Linux 6.8

// LSM_ID_* of include/uapi/linux/lsm.h.
const std::map<uint64_t, const char*> kLsmIds = {
    {100, "capability"}, {101, "selinux"}, {102, "smack"},     {103, "tomoyo"},   {104, "apparmor"},
    {105, "yama"},       {106, "loadpin"}, {107, "safesetid"}, {108, "lockdown"}, {109, "bpf"},
    {110, "landlock"},   {111, "ima"},     {112, "evm"},       {113, "ipe"}};

bool IsLabelLsm(const std::string& n) { return n == "apparmor" || n == "selinux" || n == "smack"; }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

}  // namespace

Result<HostLsm> DetectHostLsm() {
  HostLsm h;
  uint64_t ids[64];
  uint32_t size = sizeof(ids);
  long n = syscall(kSysLsmListModules, ids, &size, 0);
  if (n >= 0) {
    for (long i = 0; i < n && i < 64; i++) {
      auto it = kLsmIds.find(ids[i]);
      h.active.push_back(it != kLsmIds.end() ? it->second : "lsm#" + std::to_string(ids[i]));
    }
  } else {
    auto text = io::ReadFile("/sys/kernel/security/lsm");
    if (!text.ok()) {
      LOG_WARN(
          "cannot tell which LSMs are active (no lsm_list_modules, no securityfs): "
          "process labels are not saved");
      return h;
    }
    std::stringstream in(*text);
    std::string name;
    while (std::getline(in, name, ',')) h.active.push_back(Trim(name));
  }
  for (const std::string& a : h.active)
    if (IsLabelLsm(a)) {
      h.name = a;
      break;
    }
  if (h.name.empty()) return h;
  h.attr = "attr/current";
  if (h.name != "selinux" && access(("/proc/self/attr/" + h.name).c_str(), F_OK) == 0)
    h.attr = "attr/" + h.name + "/current";
  return h;
}

Result<LsmDumper> LsmDumper::Create() {
  LsmDumper d;
  TRY_ASSIGN(d.host_, DetectHostLsm());
  if (!d.host_.name.empty()) d.img_.set_lsm(d.host_.name);
  LOG_DBG("LSMs: " + Join(d.host_.active) +
          (d.host_.name.empty() ? "; none labels processes" : "; labels from " + d.host_.name));
  return d;
}

Status LsmDumper::AddProcess(pid_t pid, const std::vector<pid_t>& threads) {
  if (host_.name.empty()) return Ok();
  for (pid_t tid : threads) {
    std::string path =
        "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + host_.attr;
    TRY_ASSIGN(std::string label, io::ReadFile(path),
               "pid " + std::to_string(pid) + ": " + host_.name + " label");
    pb::LsmThreadEntry* t = img_.add_threads();
    t->set_tid(uint32_t(tid));
    t->set_label(Trim(label));
  }
  return Ok();
}

Status LsmDumper::Write(images::ImageDir& dir) const {
  if (host_.name.empty()) return Ok();
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kLsm));
  TRY(w.Write(img_));
  return w.Close();
}

std::string AppArmorProfileName(const std::string& label) {
  // attr/current shows "NAME (MODE)" for a confined task, "unconfined" else.
  if (label.size() > 2 && label.back() == ')') {
    size_t p = label.rfind(" (");
    if (p != std::string::npos) return label.substr(0, p);
  }
  return label;
}

Result<std::string> LsmRestoreText(const HostLsm& host, const std::string& image_lsm,
                                   const std::string& label, const std::string& current,
                                   const std::set<std::string>* profiles) {
  if (host.name != image_lsm) {
    if (image_lsm == "apparmor" && label == "unconfined") return std::string();
    return Error("the dump has the " + image_lsm + " label '" + label + "', but this host has no " +
                 image_lsm + " (active LSMs: " + Join(host.active) + ")");
  }
  if (label == current) return std::string();
  if (image_lsm == "apparmor") {
    std::string name = AppArmorProfileName(label);
    if (profiles && name != "unconfined" && !profiles->count(name))
      return Error("AppArmor profile '" + name + "' is not loaded on this host");
    return "changeprofile " + name;
  }
  return label;
}

Status LoadLsm(const images::ImageDir& dir, TreeImages* tree, const std::string& profile) {
  pb::LsmEntry e;
  if (!profile.empty()) {
    // --lsm-profile LSM:LABEL: every thread gets it, whatever the images say.
    size_t colon = profile.find(':');
    if (colon == std::string::npos || colon + 1 == profile.size())
      return Error("bad --lsm-profile '" + profile +
                   "' (use apparmor:NAME, selinux:LABEL or smack:LABEL)");
    e.set_lsm(profile.substr(0, colon));
    for (const TaskImages& task : tree->tasks) {
      if (task.zombie() || task.helper) continue;
      for (const pb::ThreadEntry& th : task.core.threads()) {
        pb::LsmThreadEntry* t = e.add_threads();
        t->set_tid(th.tid());
        t->set_label(profile.substr(colon + 1));
      }
    }
  } else {
    if (!dir.Exists(images::ImageType::kLsm)) return Ok();
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kLsm));
    TRY(r.ReadOne(e), "lsm image");
  }
  std::string source = profile.empty() ? "lsm image" : "--lsm-profile " + profile;
  if (!IsLabelLsm(e.lsm())) return Error(source + ": unknown LSM '" + e.lsm() + "'");
  std::map<uint32_t, const std::string*> labels;
  for (const auto& t : e.threads()) {
    if (t.label().empty() || t.label().size() > 4000 ||
        t.label().find_first_of(std::string("\n\0", 2)) != std::string::npos)
      return Error(source + ": tid " + std::to_string(t.tid()) + ": bad label");
    if (!labels.emplace(t.tid(), &t.label()).second)
      return Error("lsm image: tid " + std::to_string(t.tid()) + " appears twice");
  }
  TRY_ASSIGN(HostLsm host, DetectHostLsm());
  std::string current;
  if (!host.name.empty()) {
    auto c = io::ReadFile("/proc/thread-self/" + host.attr);
    if (c.ok()) current = Trim(*c);
  }
  std::set<std::string> profiles;
  bool know_profiles = false;
  if (host.name == "apparmor") {
    auto text = io::ReadFile("/sys/kernel/security/apparmor/profiles");
    if (text.ok()) {
      know_profiles = true;
      std::stringstream in(*text);
      std::string line;
      while (std::getline(in, line)) profiles.insert(AppArmorProfileName(line));
    }
  }
  size_t used = 0;
  for (TaskImages& task : tree->tasks) {
    if (task.zombie() || task.helper) continue;
    TaskLsm& l = task.lsm;
    l.before_creds = e.lsm() == "smack";
    l.attr = "/proc/thread-self/" + host.attr;
    for (const pb::ThreadEntry& th : task.core.threads()) {
      std::string who = "pid " + std::to_string(task.pid()) +
                        (pid_t(th.tid()) != task.pid() ? " tid " + std::to_string(th.tid()) : "");
      auto it = labels.find(th.tid());
      if (it == labels.end()) return Error("lsm image: " + who + " is missing");
      used++;
      TRY_ASSIGN(
          std::string text,
          LsmRestoreText(host, e.lsm(), *it->second, current, know_profiles ? &profiles : nullptr),
          who);
      l.writes.push_back(std::move(text));
    }
  }
  if (used != labels.size()) return Error("lsm image: names threads that are not in the dump");
  return Ok();
}

uint64_t LsmArgsSize(const TaskLsm& l) {
  uint64_t n = 0;
  for (const auto& w : l.writes) n += w.size() + 1;
  return (n + 7) & ~uint64_t(7);
}

void FillLsmArgs(const TaskLsm& l, abi::RestoreArgs* a, uint64_t off) {
  char* base = reinterpret_cast<char*>(a);
  auto* rt = reinterpret_cast<abi::RestoreThread*>(base + a->threads_off);
  bool any = false;
  for (uint32_t i = 0; i < a->nr_threads && i < l.writes.size(); i++) {
    const std::string& w = l.writes[i];
    if (w.empty()) continue;
    memcpy(base + off, w.data(), w.size());
    rt[i].lsm_label_off = off;
    rt[i].lsm_label_len = uint32_t(w.size());
    off += w.size() + 1;
    any = true;
  }
  if (!any) return;
  strncpy(a->lsm_attr, l.attr.c_str(), sizeof(a->lsm_attr) - 1);
  a->lsm_before_creds = l.before_creds;
}

}  // namespace ckpt
