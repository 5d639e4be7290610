// An image directory and the typed files in it.
//
// Writing: ImageDir::Create makes the directory (0700) or reuses an existing
// one after removing its inventory, so a dump that dies half-way never leaves
// a directory that looks complete. Files are created 0600. Call Commit() with
// the inventory last; until then ~ImageDir removes every file it created
// (and the directory, if it made it).
//
// Reading: ImageDir::Open; OpenReader fails with a clear message on missing,
// truncated or corrupt files.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_types.h"

namespace ckpt::images {

class ImageWriter {
 public:
  ImageWriter(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  ~ImageWriter() = default;
  ImageWriter(ImageWriter&&) = default;

  Status Write(const google::protobuf::Message& m);
  // Flushes buffered records and makes them durable.
  Status Sync();
  // Flushes buffered records; must be called before destruction.
  Status Close();
  const std::string& name() const { return name_; }

 private:
  Status Flush();
  UniqueFd fd_;
  std::string name_;
  std::string buf_;
};

class ImageReader {
 public:
  ImageReader(UniqueFd fd, std::string name, const ImageTypeInfo* info)
      : fd_(std::move(fd)), name_(std::move(name)), info_(info) {}

  // Reads the next record into m. Returns false at a clean end of file;
  // an error for a truncated or unparsable record.
  Result<bool> Read(google::protobuf::Message& m);
  // Reads exactly one record; missing is an error.
  Status ReadOne(google::protobuf::Message& m);
  const std::string& name() const { return name_; }
  const ImageTypeInfo* info() const { return info_; }

 private:
  Result<size_t> Fill(size_t want);
  UniqueFd fd_;
  std::string name_;
  const ImageTypeInfo* info_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

// Opens any image file, identifying its type by magic (for `ckpt show`).
Result<ImageReader> OpenAnyImage(const std::string& path);

class ImageDir {
 public:
  static Result<std::unique_ptr<ImageDir>> Create(const std::string& path);
  static Result<std::unique_ptr<ImageDir>> Open(const std::string& path);
  ~ImageDir();

  const std::string& path() const { return path_; }
  int dirfd() const { return dirfd_.get(); }

  Result<ImageWriter> OpenWriter(ImageType t, uint32_t id = 0);
  Result<ImageReader> OpenReader(ImageType t, uint32_t id = 0) const;
  bool Exists(ImageType t, uint32_t id = 0) const;
  // Raw pages file: created 0600 for writing, or opened read-only.
  Result<UniqueFd> CreateRaw(const std::string& name);
  Result<UniqueFd> OpenRaw(const std::string& name) const;
  // Syncs every file to disk, then writes the inventory: the dump is complete.
  Status Commit(const google::protobuf::Message& inventory);

 private:
  ImageDir(std::string path, UniqueFd fd, bool created, bool writing)
      : path_(std::move(path)), dirfd_(std::move(fd)), created_dir_(created), writing_(writing) {}
  Result<UniqueFd> CreateFile(const std::string& name);

  std::string path_;
  UniqueFd dirfd_;
  bool created_dir_;
  bool writing_;
  bool committed_ = false;
  std::vector<std::string> created_;
};

}  // namespace ckpt::images
