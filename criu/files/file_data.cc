#include "criu/files/file_data.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {
namespace {

using images::ImageType;

constexpr size_t kChunk = 1 << 20;  // file contents: bytes per record

Status PwriteFull(int fd, const std::string& d, uint64_t off) {
  size_t done = 0;
  while (done < d.size()) {
    ssize_t n = pwrite(fd, d.data() + done, d.size() - done, off_t(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::Errno("write file contents");
    done += size_t(n);
  }
  return Ok();
}

}  // namespace

Result<bool> DumpPipeData(images::ImageDir& dir, uint32_t id, int handle) {
  int avail = 0;
  if (ioctl(handle, FIONREAD, &avail) < 0) return Error::Errno("FIONREAD");
  if (avail <= 0) return false;
  int size = fcntl(handle, F_GETPIPE_SZ);
  if (size < 0) return Error::Errno("F_GETPIPE_SZ");
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return Error::Errno("pipe");
  UniqueFd r(p[0]), w(p[1]);
  // tee() copies buffers, not bytes: our pipe needs as many slots as the
  // task's. A task can only have grown its pipe past fs.pipe-max-size with
  // CAP_SYS_RESOURCE, which ckpt lacks here.
  if (fcntl(w.get(), F_GETPIPE_SZ) < size && fcntl(w.get(), F_SETPIPE_SZ, size) < 0)
    return Error::Errno("cannot make a " + std::to_string(size) +
                        "-byte pipe to copy the data into (fs.pipe-max-size)");
  ssize_t n = tee(handle, w.get(), size_t(avail), SPLICE_F_NONBLOCK);
  if (n < 0) return Error::Errno("tee");
  if (n != avail)
    return Error("tee copied " + std::to_string(n) + " of " + std::to_string(avail) + " bytes");
  TRY_ASSIGN(images::ImageWriter out, dir.OpenWriter(ImageType::kFileData, id));
  std::string buf(65536, '\0');
  uint64_t off = 0;
  while (off < uint64_t(n)) {
    ssize_t got = read(r.get(), buf.data(), buf.size());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Error::Errno("read back the pipe copy");
    pb::FileDataEntry e;
    e.set_offset(off);
    e.set_data(buf.data(), size_t(got));
    TRY(out.Write(e));
    off += uint64_t(got);
  }
  TRY(out.Close());
  return true;
}

Status RestorePipeData(const images::ImageDir& dir, uint32_t id, int pipe_w, uint64_t max) {
  TRY_ASSIGN(images::ImageReader in, dir.OpenReader(ImageType::kFileData, id));
  uint64_t total = 0;
  pb::FileDataEntry e;
  for (;;) {
    TRY_ASSIGN(bool got, in.Read(e));
    if (!got) break;
    if (e.offset() != total || e.data().empty())
      return Error(in.name() + ": records are not consecutive");
    total += e.data().size();
    if (total > max)
      return Error(in.name() + ": more data than the pipe holds (" + std::to_string(max) +
                   " bytes)");
    ssize_t n;
    do {
      n = write(pipe_w, e.data().data(), e.data().size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Error::Errno("refill pipe");
    if (size_t(n) != e.data().size()) return Error("refill pipe: short write");
  }
  return Ok();
}

Result<bool> DumpFileData(images::ImageDir& dir, uint32_t id, int fd, uint64_t size) {
  std::optional<images::ImageWriter> out;
  std::string buf;
  uint64_t off = 0;
  while (off < size) {
    off_t data = lseek(fd, off_t(off), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) return Error::Errno("SEEK_DATA");
    off_t hole = lseek(fd, data, SEEK_HOLE);
    uint64_t end = hole < 0 ? size : std::min<uint64_t>(uint64_t(hole), size);
    for (uint64_t pos = uint64_t(data); pos < end; pos += kChunk) {
      size_t len = size_t(std::min<uint64_t>(kChunk, end - pos));
      buf.resize(len);
      size_t got = 0;
      while (got < len) {
        ssize_t n = pread(fd, buf.data() + got, len - got, off_t(pos + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::Errno("read file contents");
        if (n == 0) break;  // truncated meanwhile: the rest reads as zeros
        got += size_t(n);
      }
      buf.resize(got);
      if (std::all_of(buf.begin(), buf.end(), [](char c) { return c == 0; })) continue;
      if (!out) {
        TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(ImageType::kFileData, id));
        out.emplace(std::move(w));
      }
      pb::FileDataEntry e;
      e.set_offset(pos);
      e.set_data(buf);
      TRY(out->Write(e));
    }
    off = end;
  }
  if (!out) return false;
  TRY(out->Close());
  return true;
}

Status RestoreFileData(const images::ImageDir& dir, uint32_t id, int fd, uint64_t size) {
  TRY_ASSIGN(images::ImageReader in, dir.OpenReader(ImageType::kFileData, id));
  pb::FileDataEntry e;
  uint64_t next = 0;
  for (;;) {
    TRY_ASSIGN(bool got, in.Read(e));
    if (!got) break;
    uint64_t end = e.offset() + e.data().size();
    if (e.offset() < next || end < e.offset() || end > size)
      return Error(in.name() + ": record at offset " + std::to_string(e.offset()) +
                   " is out of order or past the file's size");
    TRY(PwriteFull(fd, e.data(), e.offset()));
    next = end;
  }
  return Ok();
}

}  // namespace ckpt::files
