// SPDX-License-Identifier: GPL-3.0-or-later
// The curves a chart shows: full-resolution points per run and metric, appended from the live
// event stream and from the database, with the debiased EMA kept incrementally next to them (the
// smoothing always sees every point; only drawing is downsampled).
#pragma once

#include <QColor>
#include <QObject>
#include <QString>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/results/ema.h"
#include "core/store/store.h"
#include "ui/curve_math.h"
#include "ui/progress_parser.h"

namespace mmlab::ui {

/// A chart's x axis. kRelative: training seconds since the run's first start (a point's `wall`,
/// which does not count the time a run spent stopped); kWallClock: the date and time the point was
/// logged, in Unix seconds (see CurveSet::x_of). The values are kept in the settings
/// ("plot/xaxis"), so new axes go at the end.
enum class XAxis { kStep, kTokens, kRelative, kWallClock };

struct Series {
  std::vector<double> step, tokens, wall, value;
  std::vector<double> smooth;  ///< debiased EMA of value at smooth_alpha (same length)
  double smooth_alpha = -1;
  DebiasedEma ema{1.0};
  std::vector<double> clock;   ///< wall-clock time of each point, once update_clock ran
  uint64_t clock_version = 0;  ///< RunCurves::clock_version that `clock` was computed for
  /// Set by a loader that read the points from the database: the run's training sessions as
  /// stored there (CurveSet moves them to the run).
  std::optional<std::vector<store::TrainingSession>> stored_sessions;

  size_t size() const { return step.size(); }
  /// The x values on `axis`; for kWallClock, `clock` as update_clock last left it.
  const std::vector<double>& x(XAxis axis) const {
    switch (axis) {
      case XAxis::kStep:
        return step;
      case XAxis::kTokens:
        return tokens;
      case XAxis::kRelative:
        return wall;
      case XAxis::kWallClock:
        return clock;
    }
    return step;
  }
  /// Appends a point. A step not after the last one means the run was resumed from an earlier
  /// checkpoint: the stale tail from that step on is dropped first (as the trainer does in the DB).
  void append(int64_t s, int64_t tok, double w, double v);
  /// Brings `smooth` up to date for `alpha` (incremental unless alpha changed).
  void update_smooth(double alpha);
  /// Brings `clock` up to date (incremental unless `version` changed): a point's time is
  /// started_at + (wall - session wall) of the last of `sessions` that began before its wall
  /// (the first for a point at or before the first's); without sessions (runs trained before they
  /// were recorded), origin + wall.
  void update_clock(const std::vector<store::TrainingSession>& sessions, double origin,
                    uint64_t version);
};

struct RunCurves {
  int64_t run_id = 0;
  QString label;
  QString group;  ///< runs with the same group (config without seed) form a seed group
  QColor color;
  /// Unix time at which the run's `wall` was 0, for the wall-clock axis; NaN while unknown. From
  /// the database (RunRow::started_at) when the run is there, else estimated from the live stream
  /// (arrival time of the run's first event minus its wall).
  double start_time = std::numeric_limits<double>::quiet_NaN();
  /// The run's training sessions (a start and each resume), oldest first: from the database
  /// (exact), and for a session the database has not been read for yet, estimated from the live
  /// stream (the arrival time of its `running` status event).
  std::vector<store::TrainingSession> sessions;
  uint64_t clock_version = 1;  ///< bumped whenever start_time or sessions change
  int64_t total_steps = 0;     ///< the run's step budget, 0 while unknown (default smoothing)
  std::map<std::string, Series> metrics;
  std::map<std::string, bool> loaded;  ///< metric read from the database already
};

/// Loads all stored points of (run, metric); installed by whoever owns the database.
using PointLoader = std::function<void(int64_t run_id, const std::string& metric, Series& out)>;

class CurveSet : public QObject {
  Q_OBJECT

 public:
  explicit CurveSet(QObject* parent = nullptr) : QObject(parent) {}

  void set_loader(PointLoader loader) { loader_ = std::move(loader); }
  /// Asynchronous alternative to set_loader: series() asks `request` for the stored points once
  /// and returns what is in memory; the answer arrives through insert_loaded().
  void set_requester(std::function<void(int64_t run_id, const std::string& metric)> request) {
    requester_ = std::move(request);
  }
  /// Stored points of (run, metric) read elsewhere; points that arrived live meanwhile are kept
  /// after them. Emits changed().
  void insert_loaded(int64_t run_id, const std::string& metric, Series stored);
  /// Whether (run, metric) has been read from the database (or asked for).
  bool is_loaded(int64_t run_id, const std::string& metric) const;
  /// The run's curves, created (with a stable colour) on first use.
  RunCurves& run(int64_t run_id);
  const RunCurves* find(int64_t run_id) const;
  bool contains(int64_t run_id) const { return runs_.count(run_id) != 0; }
  /// The series of (run, metric), loading the stored points the first time it is asked for.
  Series& series(int64_t run_id, const std::string& metric);
  void append(int64_t run_id, const std::string& metric, int64_t step, int64_t tokens, double wall,
              double value);
  /// Appends the metrics of step/eval events (the live stream). `now` (Unix seconds; default: the
  /// current time) is when they arrived: a run without a start time gets `now - wall` of its
  /// first event, since the stream never says when the run started.
  void apply(const std::vector<ProgressEvent>& events,
             double now = std::numeric_limits<double>::quiet_NaN());
  /// The run's start from the database (RunRow::started_at, Unix seconds); replaces an estimate
  /// made from the live stream. Emits changed() when the start time changes.
  void set_start_time(int64_t run_id, double started_at);
  /// The x values of `s` (a series of run `run_id`) on `axis`. For kWallClock: the time each point
  /// was logged (kept in Series::clock), from the run's sessions, so the points after a resume
  /// are placed when they were logged, after the time the run spent stopped. A run without
  /// recorded sessions falls back to its start time plus `wall` (exact until its first resume);
  /// nullptr while neither is known (the run cannot be placed on a clock yet).
  const std::vector<double>* x_of(int64_t run_id, Series& s, XAxis axis) const;
  /// The run's sessions as the database has them (exact); a session estimated from the live
  /// stream that began after the last of them is kept. Emits changed() when they change.
  void set_sessions(int64_t run_id, std::vector<store::TrainingSession> sessions);
  /// Forgets a run (deleted) or everything (another database).
  void remove(int64_t run_id);
  void clear();
  /// Metric names seen in memory for these runs, sorted.
  std::vector<std::string> metric_names(const std::vector<int64_t>& runs) const;

  /// A run's own colour: entry (run_id - 1) mod kPaletteSize of the palette.
  static QColor color_for(int64_t run_id);
  /// Colours for runs shown together, pairwise different however many: each run's own colour
  /// where no earlier run in `runs` has it, else the first palette entry that none of them uses.
  static std::map<int64_t, QColor> distinct_colors(const std::vector<int64_t>& runs);
  /// Entry `index` of the palette: Tableau 20 for the first kPaletteSize, then hues a golden
  /// angle apart.
  static QColor palette_color(size_t index);
  static constexpr size_t kPaletteSize = 20;

 Q_SIGNALS:
  /// New points (cheap to emit per batch: the plot replots on its own timer).
  void changed();

 private:
  static void merge(Series& s, Series stored);
  static size_t palette_index_of(int64_t run_id);

  std::map<int64_t, RunCurves> runs_;
  PointLoader loader_;
  std::function<void(int64_t, const std::string&)> requester_;
};

}  // namespace mmlab::ui
