#include "bench_report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "bench_util.h"

namespace bench {

double Timing::best() const {
  return runs.empty() ? NAN : *std::min_element(runs.begin(), runs.end());
}

std::string runs_str(const Timing& t) {
  std::string s;
  for (double r : t.runs) s += fmt(" %.3f", r);
  return s.empty() ? s : s.substr(1);
}

std::string ratio_str(double r) { return std::isfinite(r) ? fmt("%.2fx", r) : std::string("-"); }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

namespace {

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\t': r += "\\t"; break;
      default:
        if (ch < 0x20)
          r += fmt("\\u%04x", ch);
        else
          r += static_cast<char>(ch);
    }
  }
  return r + "\"";
}

std::string json_number(double d) {
  if (!std::isfinite(d)) return "null";
  if (d == std::floor(d) && std::fabs(d) < 1e15) return fmt("%.0f", d);
  return fmt("%.6g", d);
}

std::string json_value(const ReportValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return json_string(*s);
  if (const auto* l = std::get_if<std::vector<double>>(&v)) {
    std::string r = "[";
    for (size_t i = 0; i < l->size(); i++) r += (i ? ", " : "") + json_number((*l)[i]);
    return r + "]";
  }
  return json_number(std::get<double>(v));
}

std::string json_object(const ReportFields& f) {
  std::string r = "{";
  for (size_t i = 0; i < f.size(); i++)
    r += (i ? ", " : "") + json_string(f[i].first) + ": " + json_value(f[i].second);
  return r + "}";
}

}  // namespace

void Report::Add(const std::string& section, ReportFields fields) {
  records_.emplace_back(section, std::move(fields));
}

void Report::AddTiming(ReportFields* f, const std::string& prefix, const Timing& t) {
  f->emplace_back(prefix + "best_s", t.best());
  f->emplace_back(prefix + "runs_s", t.runs);
  if (!t.error.empty()) f->emplace_back(prefix + "error", first_line(t.error));
}

void Report::Note(const std::string& text) {
  if (std::find(notes_.begin(), notes_.end(), text) != notes_.end()) return;
  notes_.push_back(text);
  warn(text);
}

std::string Report::Json() const {
  std::string r = "{\"header\": " + json_object(header_) + ",\n \"notes\": [";
  for (size_t i = 0; i < notes_.size(); i++) r += (i ? ", " : "") + json_string(notes_[i]);
  r += "],\n \"records\": [";
  for (size_t i = 0; i < records_.size(); i++) {
    ReportFields f = records_[i].second;
    f.insert(f.begin(), {"section", records_[i].first});
    r += std::string(i ? ",\n  " : "\n  ") + json_object(f);
  }
  return r + "\n]}\n";
}

void Report::WriteTo(const std::string& path) const {
  // Whole or not at all: a reader never sees half a report.
  std::string tmp = path + ".tmp";
  write_file(tmp, Json());
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    errno = e;
    fail_errno("--json: rename " + tmp + " to " + path);
  }
}

Report& report() {
  static Report r;
  return r;
}

}  // namespace bench
