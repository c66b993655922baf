// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/results/progress_event.h"

#include <cmath>
#include <iterator>
#include <limits>

namespace mmlab {

namespace {

using nlohmann::json;

// The protocol's keys, written and read through these names only.
constexpr char kEvent[] = "event";
constexpr char kRunId[] = "run_id";
constexpr char kWall[] = "wall";
constexpr char kStep[] = "step";
constexpr char kTokens[] = "tokens";
constexpr char kTotalSteps[] = "total_steps";
constexpr char kStatus[] = "status";
constexpr char kMessage[] = "message";
constexpr char kName[] = "name";
constexpr char kDb[] = "db";
constexpr char kDevice[] = "device";
constexpr char kPath[] = "path";
constexpr char kBytes[] = "bytes";
constexpr char kLevel[] = "level";
constexpr char kFraction[] = "fraction";
constexpr char kMetrics[] = "metrics";

constexpr std::string_view kKindWords[] = {"status", "step", "eval", "checkpoint", "log"};
constexpr EventKind kKindValues[] = {EventKind::kStatus, EventKind::kStep, EventKind::kEval,
                                     EventKind::kCheckpoint, EventKind::kLog};
static_assert(std::size(kKindWords) == std::size(kKindValues));

bool carries_metrics(EventKind kind) {
  return kind == EventKind::kStep || kind == EventKind::kEval;
}

// Reads an optional integer key; false when it is present with a non-integer type.
bool read_int(const json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_number_integer() || it->is_number_unsigned()) {
    out = it->get<int64_t>();
    return true;
  }
  if (it->is_number_float()) {  // 4096.0 from a writer that prints every number as double
    const double v = it->get<double>();
    if (std::isfinite(v) && v == std::floor(v)) {
      out = static_cast<int64_t>(v);
      return true;
    }
  }
  return false;
}

bool read_double(const json& j, const char* key, double& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number()) return false;
  out = it->get<double>();
  return true;
}

bool read_string(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

EventParse malformed(std::string& why, std::string reason) {
  why = std::move(reason);
  return EventParse::kMalformed;
}

}  // namespace

std::string_view to_string(EventKind kind) {
  for (size_t i = 0; i < std::size(kKindValues); ++i) {
    if (kKindValues[i] == kind) return kKindWords[i];
  }
  return "log";
}

bool ProgressEvent::operator==(const ProgressEvent& o) const {
  auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  if (metrics.size() != o.metrics.size()) return false;
  for (size_t i = 0; i < metrics.size(); ++i) {
    if (metrics[i].first != o.metrics[i].first || !same(metrics[i].second, o.metrics[i].second))
      return false;
  }
  return kind == o.kind && run_id == o.run_id && same(wall, o.wall) && step == o.step &&
         tokens == o.tokens && total_steps == o.total_steps &&
         (kind != EventKind::kStatus || status == o.status) && message == o.message &&
         name == o.name && db == o.db && device == o.device && path == o.path && bytes == o.bytes &&
         level == o.level && same(fraction, o.fraction);
}

std::string to_line(const ProgressEvent& e) {
  json j = {{kEvent, to_string(e.kind)}, {kRunId, e.run_id}, {kWall, e.wall}};
  if (e.step >= 0) j[kStep] = e.step;
  if (e.tokens >= 0) j[kTokens] = e.tokens;
  if (e.total_steps >= 0) j[kTotalSteps] = e.total_steps;
  if (e.kind == EventKind::kStatus) j[kStatus] = to_string(e.status);
  if (!e.message.empty()) j[kMessage] = e.message;
  if (!e.name.empty()) j[kName] = e.name;
  if (!e.db.empty()) j[kDb] = e.db;
  if (!e.device.empty()) j[kDevice] = e.device;
  if (!e.path.empty()) j[kPath] = e.path;
  if (e.bytes >= 0) j[kBytes] = e.bytes;
  if (!e.level.empty()) j[kLevel] = e.level;
  if (e.fraction >= 0) j[kFraction] = e.fraction;
  if (carries_metrics(e.kind)) {
    json m = json::object();
    for (const auto& [name, value] : e.metrics) m[name] = value;  // NaN/Inf dump as null
    j[kMetrics] = std::move(m);
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

EventParse parse_event(const json& j, ProgressEvent& out, std::string& why) {
  if (!j.is_object()) return malformed(why, "not a JSON object");
  auto ev = j.find(kEvent);
  if (ev == j.end() || !ev->is_string()) return malformed(why, "no \"event\" string");

  ProgressEvent e;
  const std::string& word = ev->get_ref<const std::string&>();
  size_t k = 0;
  while (k < std::size(kKindWords) && kKindWords[k] != word) ++k;
  if (k == std::size(kKindWords)) return EventParse::kUnknownEvent;  // a newer trainer's event
  e.kind = kKindValues[k];

  if (!j.contains(kRunId)) return malformed(why, "\"" + word + "\" event without run_id");
  if (!read_int(j, kRunId, e.run_id)) return malformed(why, "run_id is not an integer");
  if (!read_double(j, kWall, e.wall) || !read_double(j, kFraction, e.fraction))
    return malformed(why, "wall/fraction is not a number");
  if (!read_int(j, kStep, e.step) || !read_int(j, kTokens, e.tokens) ||
      !read_int(j, kTotalSteps, e.total_steps) || !read_int(j, kBytes, e.bytes))
    return malformed(why, "step/tokens/total_steps/bytes is not an integer");
  std::string status;
  if (!read_string(j, kStatus, status) || !read_string(j, kMessage, e.message) ||
      !read_string(j, kName, e.name) || !read_string(j, kDb, e.db) ||
      !read_string(j, kDevice, e.device) || !read_string(j, kPath, e.path) ||
      !read_string(j, kLevel, e.level))
    return malformed(why, "a text field is not a string");
  if (e.kind == EventKind::kStatus) {
    if (status.empty()) return malformed(why, "status event without status");
    const std::optional<RunStatus> known = find_run_status(status);
    if (!known) return malformed(why, "unknown status \"" + status + "\"");
    e.status = *known;
  }
  if (carries_metrics(e.kind) && e.step < 0)
    return malformed(why, "\"" + word + "\" event without step");

  auto m = j.find(kMetrics);
  if (m != j.end() && !m->is_null()) {
    if (!m->is_object()) return malformed(why, "metrics is not an object");
    e.metrics.reserve(m->size());
    for (auto it = m->begin(); it != m->end(); ++it) {
      if (it->is_number()) {
        e.metrics.emplace_back(it.key(), it->get<double>());
      } else if (it->is_null()) {
        e.metrics.emplace_back(it.key(), std::numeric_limits<double>::quiet_NaN());
      }
      // Any other type is skipped alone: the other metrics of the step are still good.
    }
  }
  out = std::move(e);
  return EventParse::kEvent;
}

}  // namespace mmlab
