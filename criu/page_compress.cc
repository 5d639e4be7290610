#include "criu/page_compress.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <cstring>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/page_chain.h"
#include "criu/task_images.h"
#include "images/zpages.h"

namespace ckpt {

Status ParseCompress(const std::string& arg, bool* on, int* level) {
  std::string algo = arg, lv;
  size_t colon = arg.find(':');
  if (colon != std::string::npos) algo = arg.substr(0, colon), lv = arg.substr(colon + 1);
  if (algo != "zstd")
    return Error("bad --compress '" + arg + "' (zstd or zstd:LEVEL; the only method)");
  int l = 0;
  if (colon != std::string::npos) {
    char* end = nullptr;
    errno = 0;
    long v = strtol(lv.c_str(), &end, 10);
    if (lv.empty() || *end || errno || v < -7 || v > 19 || v == 0)
      return Error("bad --compress level '" + lv + "' (-7..19, not 0)");
    l = int(v);
  }
  *on = true;
  *level = l;
  return Ok();
}

namespace {

constexpr size_t kReadChunk = 1 << 20;

class CompressTarget : public PageTarget {
 public:
  CompressTarget(std::unique_ptr<PageTarget> inner, int level)
      : inner_(std::move(inner)), level_(level) {}
  ~CompressTarget() override { Stop(); }

  Status WriteFile(const std::string& name, const std::string& bytes) override {
    return inner_->WriteFile(name, bytes);
  }

  Result<int> Begin(const std::string& name) override {
    if (name.rfind("pages-", 0) != 0) {
      passthrough_ = true;
      return inner_->Begin(name);
    }
    passthrough_ = false;
    TRY_ASSIGN(int out, inner_->Begin(name));
    TRY(inner_->MarkZPages());
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
    pipe_r_.reset(p[0]);
    pipe_w_.reset(p[1]);
    fcntl(pipe_w_.get(), F_SETPIPE_SZ, 1 << 20);
    name_ = name;
    failed_ = false;
    status_ = Ok();
    raw_ = out_bytes_ = 0;
    thread_ = std::thread([this, out] { Run(out); });
    return pipe_w_.get();
  }

  Status Announce(uint64_t bytes) override {
    if (passthrough_) return inner_->Announce(bytes);
    // The thread failed: stop feeding it (it drains what is in flight).
    if (failed_.load()) return Error(name_ + ": compressing failed (see End)");
    return Ok();
  }

  Status End() override {
    if (passthrough_) return inner_->End();
    Stop();
    if (!status_.ok()) return std::move(status_);
    LOG_INFO(name_ + ": " + std::to_string(raw_) + " bytes compressed to " +
             std::to_string(out_bytes_) +
             (raw_ ? " (" + std::to_string(out_bytes_ * 100 / raw_) + "%)" : std::string()));
    return inner_->End();
  }

  Status MarkZPages() override { return Error("pages are compressed once"); }
  Status Commit() override { return inner_->Commit(); }
  std::string Describe() const override {
    return inner_->Describe() + ", zstd level " + std::to_string(level_);
  }

 private:
  void Stop() {
    pipe_w_.reset();  // EOF for the thread
    if (thread_.joinable()) thread_.join();
    pipe_r_.reset();
  }

  void Run(int out) {
    images::ZParams zp;
    zp.level = level_;
    zp.workers = 2;
    images::ZWriter w(zp, [&](const void* p, size_t n) -> Status {
      TRY(inner_->Announce(n));
      return io::WriteFull(out, p, n);
    });
    std::unique_ptr<char[]> buf(new char[kReadChunk]);
    Status st = Ok();
    for (;;) {
      ssize_t n = read(pipe_r_.get(), buf.get(), kReadChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        if (st.ok()) st = Error::Errno("reading pages to compress");
        break;  // the writer sees EPIPE, never a block
      }
      if (n == 0) break;
      if (!st.ok()) continue;  // drain, so the dump's splice never waits on us
      Status s = w.Write(buf.get(), size_t(n));
      if (!s.ok()) {
        st = std::move(s);
        failed_ = true;
      }
    }
    if (st.ok()) st = w.Finish();
    raw_ = w.raw_bytes();
    out_bytes_ = w.out_bytes();
    if (!st.ok()) {
      failed_ = true;
      status_ = std::move(st.error().Context(name_));
    }
  }

  std::unique_ptr<PageTarget> inner_;
  int level_;
  bool passthrough_ = false;
  std::string name_;
  UniqueFd pipe_r_, pipe_w_;
  std::thread thread_;
  std::atomic<bool> failed_{false};
  Status status_ = Ok();  // the thread's, read after join
  uint64_t raw_ = 0, out_bytes_ = 0;
};

}  // namespace

Result<std::unique_ptr<PageTarget>> CompressPages(std::unique_ptr<PageTarget> inner, int level) {
  if (level == 0) level = kDefaultCompressLevel;
  LOG_INFO("pages compressed with " + images::ZstdDescribe() + ", level " +
           std::to_string(level));
  return std::unique_ptr<PageTarget>(new CompressTarget(std::move(inner), level));
}

Status UnpackPages(const images::ImageDir& dir, const TreeImages& tree) {
  std::set<std::string> names;
  for (const TaskImages& t : tree.tasks) {
    if (t.zombie()) continue;
    names.insert(images::PagesFileName(t.pages_id));
    for (const auto& p : t.pages)
      if (p.has_src_pages_id()) names.insert(PagesSourceName(p.src_pages_id()));
  }
  for (const std::string& n : names) {
    TRY_ASSIGN(bool z, dir.IsZPages(n));
    if (!z) continue;
    TRY(dir.OpenRaw(n));  // kept by dir; the fd returned is closed here
  }
  return Ok();
}

}  // namespace ckpt
