// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/curve_data.h"

#include <QDateTime>
#include <algorithm>
#include <array>
#include <cmath>
#include <set>

namespace mmlab::ui {

void Series::append(int64_t s, int64_t tok, double w, double v) {
  const double ds = double(s);
  if (!step.empty() && ds <= step.back()) {
    const size_t keep = std::lower_bound(step.begin(), step.end(), ds) - step.begin();
    step.resize(keep);
    tokens.resize(keep);
    wall.resize(keep);
    value.resize(keep);
    if (clock.size() > keep) clock.resize(keep);  // the kept points' clock values still hold
    smooth_alpha = -1;  // the EMA state belongs to the dropped tail: recompute
  }
  step.push_back(ds);
  tokens.push_back(double(tok));
  wall.push_back(w);
  value.push_back(v);
}

void Series::update_smooth(double alpha) {
  if (alpha != smooth_alpha || smooth.size() > value.size()) {
    smooth.clear();
    ema = DebiasedEma(alpha);
    smooth_alpha = alpha;
  }
  smooth.reserve(value.size());
  for (size_t i = smooth.size(); i < value.size(); ++i)
    smooth.push_back(ema.update(value[i], i == 0 ? 1.0 : step[i] - step[i - 1]));
}

void Series::update_clock(const std::vector<store::TrainingSession>& sessions, double origin,
                          uint64_t version) {
  if (version != clock_version || clock.size() > wall.size()) {
    clock.clear();
    clock_version = version;
  }
  clock.reserve(wall.size());
  for (size_t i = clock.size(); i < wall.size(); ++i) {
    const double w = wall[i];
    if (sessions.empty()) {
      clock.push_back(origin + w);
      continue;
    }
    // The last session that began before this wall. A point logged at a session's very wall is
    // the last one of the session before (the stop's checkpoint carries that wall on); points
    // before the first session's wall (0 for a fresh run) belong to the first.
    auto it =
        std::lower_bound(sessions.begin(), sessions.end(), w,
                         [](const store::TrainingSession& s, double x) { return s.wall < x; });
    const store::TrainingSession& s = it == sessions.begin() ? sessions.front() : *std::prev(it);
    clock.push_back(s.started_at + (w - s.wall));
  }
}

QColor CurveSet::palette_color(size_t index) {
  // Tableau 20: the ten Tableau 10 colours (distinguishable, and colour-blind safer than Qt's
  // defaults), then their light companions.
  static const std::array<QRgb, kPaletteSize> kPalette{
      0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2,
      0x7f7f7f, 0xbcbd22, 0x17becf, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896,
      0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xc7c7c7, 0xdbdb8d, 0x9edae5};
  if (index < kPaletteSize) return QColor(kPalette[index]);
  // Beyond twenty at once: hues a golden angle apart, so every new one falls in the widest gap
  // left, at two lightness levels that stay readable on light and dark backgrounds.
  const size_t k = index - kPaletteSize;
  const double hue = std::fmod(double(k) * 137.50776405, 360.0);
  return QColor::fromHsl(int(hue), 170, k % 2 == 0 ? 110 : 150);
}

size_t CurveSet::palette_index_of(int64_t run_id) {
  return size_t(((run_id - 1) % int64_t(kPaletteSize) + int64_t(kPaletteSize)) %
                int64_t(kPaletteSize));
}

QColor CurveSet::color_for(int64_t run_id) {
  return palette_color(palette_index_of(run_id));
}

std::map<int64_t, QColor> CurveSet::distinct_colors(const std::vector<int64_t>& runs) {
  // Each run keeps its own colour (color_for) unless a run before it in `runs` already has that
  // one: then it takes the first colour nobody shown uses. Consecutive run ids (the runs of one
  // experiment) never clash below twenty; ids twenty apart do, and are told apart here.
  std::set<size_t> wanted, used;
  for (int64_t id : runs) wanted.insert(palette_index_of(id));
  std::map<int64_t, QColor> out;
  std::vector<int64_t> clashing;
  for (int64_t id : runs) {
    if (out.count(id)) continue;
    const size_t own = palette_index_of(id);
    if (used.insert(own).second)
      out[id] = palette_color(own);
    else
      clashing.push_back(id);
  }
  size_t next = 0;
  for (int64_t id : clashing) {
    while (wanted.count(next) || used.count(next)) ++next;
    used.insert(next);
    out[id] = palette_color(next);
  }
  return out;
}

RunCurves& CurveSet::run(int64_t run_id) {
  auto it = runs_.find(run_id);
  if (it != runs_.end()) return it->second;
  RunCurves& r = runs_[run_id];
  r.run_id = run_id;
  r.label = QStringLiteral("run %1").arg(run_id);
  r.color = color_for(run_id);
  return r;
}

const RunCurves* CurveSet::find(int64_t run_id) const {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

Series& CurveSet::series(int64_t run_id, const std::string& metric) {
  RunCurves& r = run(run_id);
  Series& s = r.metrics[metric];
  if ((loader_ || requester_) && !r.loaded[metric]) {
    r.loaded[metric] = true;
    if (loader_) {
      Series stored;
      loader_(run_id, metric, stored);
      if (stored.stored_sessions) set_sessions(run_id, std::move(*stored.stored_sessions));
      merge(s, std::move(stored));
    } else {
      requester_(run_id, metric);  // answered by insert_loaded()
    }
  }
  return s;
}

void CurveSet::merge(Series& s, Series stored) {
  // Points that arrived live before the stored ones are kept after them when they are newer;
  // the result is the union without repeated steps.
  Series live = std::move(s);
  s = std::move(stored);
  s.smooth_alpha = -1;
  s.clock.clear();
  s.stored_sessions.reset();
  for (size_t i = 0; i < live.size(); ++i)
    if (s.step.empty() || live.step[i] > s.step.back())
      s.append(int64_t(live.step[i]), int64_t(live.tokens[i]), live.wall[i], live.value[i]);
}

void CurveSet::insert_loaded(int64_t run_id, const std::string& metric, Series stored) {
  RunCurves& r = run(run_id);
  r.loaded[metric] = true;
  if (stored.stored_sessions) set_sessions(run_id, std::move(*stored.stored_sessions));
  merge(r.metrics[metric], std::move(stored));
  Q_EMIT changed();
}

bool CurveSet::is_loaded(int64_t run_id, const std::string& metric) const {
  const RunCurves* r = find(run_id);
  if (!r) return false;
  auto it = r->loaded.find(metric);
  return it != r->loaded.end() && it->second;
}

void CurveSet::append(int64_t run_id, const std::string& metric, int64_t step, int64_t tokens,
                      double wall, double value) {
  run(run_id).metrics[metric].append(step, tokens, wall, value);
}

void CurveSet::apply(const std::vector<ProgressEvent>& events, double now) {
  if (std::isnan(now)) now = double(QDateTime::currentMSecsSinceEpoch()) / 1000.0;
  bool any = false;
  for (const ProgressEvent& e : events) {
    if (e.run_id < 0) continue;
    RunCurves& r = run(e.run_id);
    if (std::isnan(r.start_time)) r.start_time = now - e.wall;
    // A trainer says `running` as each session begins: until the database's record of that
    // session is read, its start is taken as the arrival of this event.
    if (e.kind == EventKind::kStatus && e.status == RunStatus::kRunning &&
        (r.sessions.empty() || e.wall > r.sessions.back().wall + 1e-9)) {
      r.sessions.push_back({e.wall, now});
      ++r.clock_version;
      any = true;
    }
    if ((e.kind != EventKind::kStep && e.kind != EventKind::kEval) || e.run_id < 0) continue;
    for (const auto& [name, v] : e.metrics) {
      append(e.run_id, name, e.step, std::max<int64_t>(e.tokens, 0), e.wall, v);
      any = true;
    }
  }
  if (any) Q_EMIT changed();
}

void CurveSet::set_start_time(int64_t run_id, double started_at) {
  RunCurves& r = run(run_id);
  if (r.start_time == started_at) return;
  r.start_time = started_at;
  ++r.clock_version;
  Q_EMIT changed();
}

void CurveSet::set_sessions(int64_t run_id, std::vector<store::TrainingSession> sessions) {
  RunCurves& r = run(run_id);
  const double last = sessions.empty() ? -1 : sessions.back().wall;
  for (const store::TrainingSession& live : r.sessions)
    if (live.wall > last + 1e-9) sessions.push_back(live);
  auto same = [](const store::TrainingSession& a, const store::TrainingSession& b) {
    return a.wall == b.wall && a.started_at == b.started_at;
  };
  if (std::equal(sessions.begin(), sessions.end(), r.sessions.begin(), r.sessions.end(), same))
    return;
  r.sessions = std::move(sessions);
  ++r.clock_version;
  Q_EMIT changed();
}

const std::vector<double>* CurveSet::x_of(int64_t run_id, Series& s, XAxis axis) const {
  if (axis != XAxis::kWallClock) return &s.x(axis);
  const RunCurves* r = find(run_id);
  if (!r || (r->sessions.empty() && std::isnan(r->start_time))) return nullptr;
  s.update_clock(r->sessions, r->start_time, r->clock_version);
  return &s.clock;
}

void CurveSet::remove(int64_t run_id) {
  runs_.erase(run_id);
  Q_EMIT changed();
}

void CurveSet::clear() {
  runs_.clear();
  Q_EMIT changed();
}

std::vector<std::string> CurveSet::metric_names(const std::vector<int64_t>& runs) const {
  std::set<std::string> names;
  for (int64_t id : runs)
    if (const RunCurves* r = find(id))
      for (const auto& [name, s] : r->metrics)
        if (s.size() > 0) names.insert(name);
  return {names.begin(), names.end()};
}

}  // namespace mmlab::ui
