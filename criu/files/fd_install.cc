#include "criu/files/fd_install.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ckpt::files {

std::map<uint32_t, int> HomesOf(const std::vector<pb::FdinfoEntry>& root_fds) {
  std::map<uint32_t, int> homes;
  for (const pb::FdinfoEntry& f : root_fds) {
    auto [it, added] = homes.emplace(f.file_id(), int(f.fd()));
    if (!added && int(f.fd()) < it->second) it->second = int(f.fd());
  }
  return homes;
}

Status InstallTaskFds(const std::vector<pb::FdinfoEntry>& fds,
                      const std::map<uint32_t, int>& sources, const std::set<int>& keep,
                      int spare_from) {
  struct Move {
    int from;
    bool cloexec;
  };
  std::map<int, Move> moves;  // target number -> what goes there
  std::map<int, int> readers;  // source number -> pending moves reading it
  for (const pb::FdinfoEntry& f : fds) {
    auto src = sources.find(f.file_id());
    if (src == sources.end())
      return Error("fd " + std::to_string(f.fd()) + ": file " + std::to_string(f.file_id()) +
                   " was not opened");
    int to = int(f.fd());
    if (keep.count(to)) return Error("fd " + std::to_string(to) + " is a service fd");
    moves[to] = {src->second, f.cloexec()};
    readers[src->second]++;
  }
  auto done_reading = [&](int from) {
    if (--readers[from] == 0) readers.erase(from);
  };
  // Numbers that already hold what they must: only the flag to set.
  for (auto it = moves.begin(); it != moves.end();) {
    if (it->second.from != it->first) {
      ++it;
      continue;
    }
    if (fcntl(it->first, F_SETFD, it->second.cloexec ? FD_CLOEXEC : 0) < 0)
      return Error::Errno("fd " + std::to_string(it->first));
    done_reading(it->first);
    it = moves.erase(it);
  }
  // A target no pending move reads from can be overwritten now; each move
  // done may free its source's number for the move that targets it.
  std::vector<int> ready;
  std::set<int> parked;  // spare copies made to break cycles
  for (const auto& [to, m] : moves)
    if (!readers.count(to)) ready.push_back(to);
  while (!moves.empty()) {
    if (ready.empty()) {
      // Only cycles are left: park one target's current fd on a spare
      // number and redirect its readers there.
      int to = moves.begin()->first;
      int spare = fcntl(to, F_DUPFD_CLOEXEC, spare_from);
      if (spare < 0) return Error::Errno("fd " + std::to_string(to) + ": moving it aside");
      for (auto& [t, m] : moves)
        if (m.from == to) m.from = spare;
      readers[spare] = readers[to];
      readers.erase(to);
      parked.insert(spare);
      ready.push_back(to);
      continue;
    }
    int to = ready.back();
    ready.pop_back();
    Move m = moves.at(to);
    if (dup3(m.from, to, m.cloexec ? O_CLOEXEC : 0) < 0)
      return Error::Errno("dup to fd " + std::to_string(to));
    moves.erase(to);
    done_reading(m.from);
    // The source's own number may now be overwritten, if a move targets it.
    if (!readers.count(m.from) && moves.count(m.from)) ready.push_back(m.from);
    // A parked copy nobody reads any more goes.
    if (!readers.count(m.from) && parked.erase(m.from)) close(m.from);
  }
  // Sources the task does not hold at their own number go.
  std::set<int> mine;
  for (const pb::FdinfoEntry& f : fds) mine.insert(int(f.fd()));
  for (const auto& [id, s] : sources)
    if (!mine.count(s) && !keep.count(s)) close(s);
  return Ok();
}

}  // namespace ckpt::files
