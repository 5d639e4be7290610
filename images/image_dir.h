// An image directory and the typed files in it.
//
// Writing: ImageDir::Create makes the directory (0700) or reuses an existing
// one after removing its inventory, so a dump that dies half-way never leaves
// a directory that looks complete. Files are created 0600. Call Commit() with
// the inventory last; until then ~ImageDir removes every file it created
// (and the directory, if it made it).
//
// Reading: ImageDir::Open; OpenReader fails with a clear message on missing,
// truncated or corrupt files. Damage is detected by checksums
// (images/image_check.h): a record image's trailer, a raw file's entry in
// checksums.img.
#pragma once

#include <google/protobuf/message.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_types.h"

namespace ckpt::images {

class ImageWriter {
 public:
  // `magic`: the type's; both magics start the file.
  ImageWriter(UniqueFd fd, std::string name, uint32_t magic);
  ~ImageWriter() = default;
  ImageWriter(ImageWriter&&) = default;

  Status Write(const google::protobuf::Message& m);
  // Ends the file with its checksum trailer and makes it durable; no Write after.
  Status Sync();
  // Ends the file with its checksum trailer (unless Sync did) and closes
  // it; must be called before destruction.
  Status Close();
  const std::string& name() const { return name_; }

 private:
  Status Flush();
  Status Seal();
  UniqueFd fd_;
  std::string name_;
  std::string buf_;
  uint32_t crc_ = 0;     // of every byte flushed so far
  uint64_t written_ = 0;
  bool sealed_ = false;
};

class ImageReader {
 public:
  // `left`: bytes of records after the magics (the trailer excluded).
  ImageReader(UniqueFd fd, std::string name, const ImageTypeInfo* info, uint64_t left)
      : fd_(std::move(fd)), name_(std::move(name)), info_(info), left_(left) {}

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
  uint64_t left_;  // record bytes not yet read from the file
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
  // Raw pages file: created 0600 for writing, or opened read-only. A raw
  // file read must be listed in checksums.img (or checksums1.img, a page
  // server's) with its size and CRC32C: checked at its first open.
  Result<UniqueFd> CreateRaw(const std::string& name);
  // A raw file listed as compressed (images/zpages.h, dump --compress)
  // comes back decompressed: the first open fills a memfd (kept, so later
  // opens and forked tasks share it), every open returns a new fd of it.
  Result<UniqueFd> OpenRaw(const std::string& name) const;
  // The file CreateRaw made holds zpages bytes: said so in checksums.img.
  void MarkZPages(const std::string& name) { zraw_.insert(name); }
  // A raw file read by offset without decompressing it whole (lazy pages,
  // `ckpt show`): raw or zpages, checked like OpenRaw.
  Result<std::unique_ptr<class PagesFile>> OpenPages(const std::string& name) const;
  // Bytes of contents of a raw file (decompressed size for a zpages one,
  // read from its index), after OpenRaw's checks: for size checks that
  // must not decompress.
  Result<uint64_t> RawSize(const std::string& name) const;
  // The same, from the listed size and a zpages file's index only: the
  // contents are not checksummed here (whoever reads them checks them
  // then). For a file of this directory (no "parent/" prefix).
  Result<uint64_t> ListedRawSize(const std::string& name) const;
  // Whether OpenRaw(name) decompresses (after its checks).
  Result<bool> IsZPages(const std::string& name) const;
  // After raw files of a complete dump were changed on purpose (a lazy
  // dump punches out the pages it serves itself, criu/lazy_source.h):
  // their entries in checksums.img take their new size and checksum; the
  // list is replaced atomically (rename).
  Status Reseal(const std::vector<std::string>& names);
  // The size and CRC32C of a raw file created here, computed while its
  // bytes were written (criu/page_copy.h): Commit lists them as they are
  // instead of reading the file back.
  void SetRawSum(const std::string& name, uint64_t size, uint32_t crc);
  // --no-sync: Commit does not wait for the files to reach the disk (a
  // crash of the machine soon after may lose or tear a dump that looked
  // complete; the checksums still refuse torn files at restore).
  void SetSync(bool on) { sync_ = on; }
  bool sync() const { return sync_; }
  // Lists every raw file created in checksums.img, syncs every file to
  // disk (unless SetSync(false)), then writes the inventory: the dump is
  // complete.
  Status Commit(const google::protobuf::Message& inventory);

 private:
  ImageDir(std::string path, UniqueFd fd, bool created, bool writing)
      : path_(std::move(path)), dirfd_(std::move(fd)), created_dir_(created), writing_(writing),
        owner_(::getpid()) {}
  // Threads to check a big file with: two in the process that opened the
  // directory, one in a process forked from it (a restored task: a
  // thread would take a pid the tree may be about to ask for).
  int SumThreads() const { return ::getpid() == owner_ ? 2 : 1; }
  Result<UniqueFd> CreateFile(const std::string& name);
  // A regular file of this directory, never through a symlink (no checks).
  Result<UniqueFd> OpenPlain(const std::string& name) const;

  std::string path_;
  UniqueFd dirfd_;
  bool created_dir_;
  bool writing_;
  bool committed_ = false;
  std::vector<std::string> created_;
  std::vector<std::string> raw_;  // created by CreateRaw
  std::set<std::string> zraw_;    // of those, zpages (MarkZPages)
  // Checks a raw file against the lists; returns whether it is zpages.
  Result<bool> CheckRaw(int fd, const std::string& name) const;
  Result<bool> Check(int fd, const std::string& name) const;  // also "parent/..." names
  std::map<std::string, std::pair<uint64_t, uint32_t>> raw_sums_;  // SetRawSum
  bool sync_ = true;
  pid_t owner_;
  // Read side: the checksum lists, loaded at the first OpenRaw.
  mutable bool sums_loaded_ = false;
  struct Sum {
    uint64_t size;
    uint32_t crc;
    bool zpages;
  };
  Status LoadSums() const;                                   // sums_, once
  Result<const Sum*> Listed(const std::string& name) const;  // its entry, or an error
  mutable std::map<std::string, Sum> sums_;
  mutable std::map<std::string, bool> verified_;  // name -> zpages
  mutable std::map<std::string, UniqueFd> unpacked_;  // zpages files, decompressed
};

// Random access to a pages file's contents (ImageDir::OpenPages).
class PagesFile {
 public:
  virtual ~PagesFile() = default;
  virtual uint64_t size() const = 0;  // bytes of contents (decompressed)
  virtual Status ReadAt(uint64_t off, void* buf, size_t len) = 0;
};

}  // namespace ckpt::images
