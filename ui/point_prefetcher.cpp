// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/point_prefetcher.h"

#include <QPointer>

#include "core/store/store.h"

namespace mmlab::ui {

// Lives on the worker thread; everything it touches is its own (the connection, the cache).
class PrefetchWorker : public QObject {
 public:
  void read(uint64_t generation, const std::shared_ptr<std::atomic<uint64_t>>& latest,
            const QString& db, const std::vector<std::pair<int64_t, std::string>>& items,
            QPointer<PointPrefetcher> target) {
    QString error;
    try {
      if (!store_ || db != db_) {
        store::OpenOptions o;
        o.mode = store::Database::Mode::kReadOnly;
        store_ = std::make_unique<store::ResultsStore>(db.toStdString(), o);
        db_ = db;
      }
      for (const auto& [run, metric] : items) {
        if (latest->load() != generation) return;  // superseded: stop reading (interruption)
        auto series = std::make_shared<Series>();
        for (const store::PointRow& p : store_->reader().points(run, metric))
          series->append(p.step, p.tokens, p.wall, p.value);
        series->stored_sessions = store_->reader().sessions(run);  // places the points on the clock
        const QString m = QString::fromStdString(metric);
        QMetaObject::invokeMethod(
            target.data(),
            [target, run, m, series, generation, latest] {
              if (target && latest->load() == generation) Q_EMIT target->loaded(run, m, series);
            },
            Qt::QueuedConnection);
      }
    } catch (const std::exception& e) {
      error = QString::fromStdString(e.what());
      store_.reset();
    }
    QMetaObject::invokeMethod(
        target.data(),
        [target, error, generation, latest] {
          if (target && latest->load() == generation) Q_EMIT target->done(error);
        },
        Qt::QueuedConnection);
  }

 private:
  std::unique_ptr<store::ResultsStore> store_;
  QString db_;
};

PointPrefetcher::PointPrefetcher(QObject* parent)
    : QObject(parent), generation_(std::make_shared<std::atomic<uint64_t>>(0)) {
  worker_ = new PrefetchWorker;
  worker_->moveToThread(&thread_);
  connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
  connect(this, &PointPrefetcher::done, this, [this] { busy_ = false; });
  thread_.start();
}

PointPrefetcher::~PointPrefetcher() {
  generation_->fetch_add(1);  // the worker stops at its next curve
  thread_.quit();
  thread_.wait();
}

void PointPrefetcher::request(const QString& db,
                              std::vector<std::pair<int64_t, std::string>> items) {
  const uint64_t gen = generation_->fetch_add(1) + 1;
  busy_ = true;
  QPointer<PointPrefetcher> self(this);
  auto latest = generation_;
  PrefetchWorker* w = worker_;
  QMetaObject::invokeMethod(
      w,
      [w, gen, latest, db, items = std::move(items), self] {
        w->read(gen, latest, db, items, self);
      },
      Qt::QueuedConnection);
}

}  // namespace mmlab::ui
