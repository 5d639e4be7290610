// What ckpt-bench's sections measure and how they report it: the best-of-N
// timing, the small formatting helpers the tables share, and the
// machine-readable report written by --json FILE (one JSON object:
// {"ckpt": ..., "records": [{"section": ..., field: value, ...}, ...]}),
// so runs on different commits can be compared by a script.
//
// Every section adds one record per table row with report().Add(); the
// tables on stdout stay the human view of the same numbers.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace bench {

constexpr double kGB = 1e9;

struct Timing {
  std::vector<double> runs;  // seconds, one per successful run
  std::string error;         // non-empty: failed
  double best() const;       // NAN if no run succeeded
};

std::string runs_str(const Timing& t);    // "0.512 0.498 0.530"
std::string ratio_str(double r);          // "1.23x", "-" if not finite
std::string first_line(const std::string& s);

// A record's value: a number (NaN and infinities are written as null), a
// string, or a list of numbers.
using ReportValue = std::variant<double, std::string, std::vector<double>>;
using ReportFields = std::vector<std::pair<std::string, ReportValue>>;

class Report {
 public:
  // The run's description: the ckpt binary, the sections, the result, ...
  void AddHeader(const std::string& key, ReportValue v) { header_.emplace_back(key, std::move(v)); }
  // One row of a section's table.
  void Add(const std::string& section, ReportFields fields);
  // Best time and every run of t under "<prefix>best_s" and "<prefix>runs_s".
  static void AddTiming(ReportFields* f, const std::string& prefix, const Timing& t);
  // A non-fatal oddity (e.g. ckpt left a process behind): warned on
  // stderr the first time, listed under the tables and in the JSON.
  void Note(const std::string& text);
  const std::vector<std::string>& notes() const { return notes_; }
  // The whole report as JSON text.
  std::string Json() const;
  // Writes Json() to path (0600); throws std::runtime_error naming the file.
  void WriteTo(const std::string& path) const;

 private:
  ReportFields header_;
  std::vector<std::string> notes_;
  std::vector<std::pair<std::string, ReportFields>> records_;
};

// The run's report (one per ckpt-bench process).
Report& report();

}  // namespace bench
