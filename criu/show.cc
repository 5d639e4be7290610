#include "criu/show.h"

#include <dirent.h>
#include <google/protobuf/util/json_util.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <vector>

#include "base/unique_fd.h"
#include "images/image_dir.h"
#include "images/image_types.h"
#include "images/zpages.h"

namespace ckpt {
namespace {

Result<std::string> ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = false;
  opt.preserve_proto_field_names = true;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opt);
  if (!st.ok()) return Error("cannot print " + m.GetTypeName() + " as JSON");
  return out;
}

// A compressed pages file (images/zpages.h): its layout, checked.
Status ShowZPages(const std::string& path, int fd, std::ostream& os) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("stat " + path);
  TRY_ASSIGN(images::ZReader r, images::ZReader::Open(UniqueFd(dup(fd)), path));
  os << "{\"file\":\"" << path << "\",\"type\":\"pages\",\"bytes\":" << st.st_size
     << ",\"compressed\":\"zstd\",\"raw_bytes\":" << r.raw_size()
     << ",\"frame_size\":" << r.layout().frame_size << ",\"frames\":" << r.layout().frames()
     << "}\n";
  return Ok();
}

Status ShowFile(const std::string& path, std::ostream& os) {
  {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    char h[images::kZHeaderSize];
    if (fd && read(fd.get(), h, sizeof(h)) == ssize_t(sizeof(h)) &&
        images::LooksLikeZPages(h, sizeof(h)))
      return ShowZPages(path, fd.get(), os);
  }
  TRY_ASSIGN(images::ImageReader r, images::OpenAnyImage(path));
  const images::ImageTypeInfo* info = r.info();
  os << "{\"file\":\"" << path << "\",\"type\":\"" << info->name << "\",\"entries\":[";
  bool first = true;
  if (info->head_factory) {
    auto head = info->head_factory();
    TRY(r.ReadOne(*head));
    TRY_ASSIGN(std::string j, ToJson(*head));
    os << "\n  " << j;
    first = false;
  }
  for (;;) {
    auto m = info->factory();
    TRY_ASSIGN(bool got, r.Read(*m));
    if (!got) break;
    TRY_ASSIGN(std::string j, ToJson(*m));
    os << (first ? "\n  " : ",\n  ") << j;
    first = false;
  }
  os << "\n]}\n";
  return Ok();
}

}  // namespace

Status Show(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return Error::Errno(path);
  if (!S_ISDIR(st.st_mode)) return ShowFile(path, std::cout);
  DIR* d = opendir(path.c_str());
  if (!d) return Error::Errno("open " + path);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".img") == 0) names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  // A directory with a checksum list says which pages files are compressed.
  std::unique_ptr<images::ImageDir> dir;
  if (std::find(names.begin(), names.end(), "checksums.img") != names.end() ||
      std::find(names.begin(), names.end(), "checksums1.img") != names.end()) {
    TRY_ASSIGN(dir, images::ImageDir::Open(path));
  }
  for (const std::string& n : names) {
    std::string p = path + "/" + n;
    // Raw contents (pages, shared memory, segments) have no image header.
    uint32_t magic = 0;
    {
      UniqueFd fd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd || read(fd.get(), &magic, sizeof(magic)) != ssize_t(sizeof(magic))) magic = 0;
    }
    if (n.rfind("pages-", 0) == 0 && dir) {
      // Listed as compressed in checksums.img (--compress): checked and
      // described; a damaged one is an error naming it.
      TRY_ASSIGN(bool z, dir->IsZPages(n));
      if (z) {
        UniqueFd fd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) return Error::Errno("open " + p);
        TRY(ShowZPages(p, fd.get(), std::cout));
        continue;
      }
    }
    if (n.rfind("pages-", 0) == 0 || magic != images::kImageMagic) {
      struct stat ps;
      stat(p.c_str(), &ps);
      std::cout << "{\"file\":\"" << p << "\",\"type\":\""
                << (n.rfind("pages-", 0) == 0 ? "pages" : "raw") << "\",\"bytes\":" << ps.st_size
                << "}\n";
      continue;
    }
    TRY(ShowFile(p, std::cout));
  }
  return Ok();
}

}  // namespace ckpt
