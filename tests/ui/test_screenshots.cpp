// SPDX-License-Identifier: GPL-3.0-or-later
// Writes the screenshots of docs/images/ (skipped unless MMLAB_SCREENSHOTS names a folder):
//   MMLAB_SCREENSHOTS=docs/images xvfb-run -a build/tests/mmlab_ui_tests
//   --gtest_filter='Screenshots*'
#include <gtest/gtest.h>

#include <QComboBox>
#include <QDir>
#include <QTabWidget>
#include <QTest>

#include "demo_db.h"
#include "fake_trainer.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/expert_heatmap.h"
#include "ui/main_window.h"
#include "ui/qcp.h"

using namespace mmlab::ui;

namespace {

// Curves read on the worker thread, then the replot timer and layout.
void settle(const MainWindow* w = nullptr, int ms = 400) {
  auto drained = [w] {
    return !w || QTest::qWaitFor([w] { return w->pending_curves() == 0; }, 10000);
  };
  EXPECT_TRUE(drained());
  QTest::qWait(ms);
  EXPECT_TRUE(drained());
  QTest::qWait(ms / 2);
}

}  // namespace

TEST(Screenshots, MainViews) {
  const QString out = qEnvironmentVariable("MMLAB_SCREENSHOTS");
  if (out.isEmpty()) GTEST_SKIP() << "set MMLAB_SCREENSHOTS=folder to write screenshots";
  mmlab::test::qt_app();
  QDir().mkpath(out);
  mmlab::test::TempDir dir;
  const QString db = QString::fromStdString((dir / "results.sqlite").string());
  const auto ids = mmlab::test::write_demo_db(db.toStdString(), 2000);
  mmlab::test::ScopedEnv bin("MMLAB_BIN", mmlab::test::write_fake_trainer(dir.path()));
  mmlab::test::ScopedEnv id_from_name("FAKE_ID_FROM_NAME", QStringLiteral("1"));

  MainWindow w(db);
  w.set_quiet(true);
  w.resize(1600, 900);
  w.show();
  w.select_runs({ids[0], ids[1], ids[2], ids[3], ids[4]});
  w.plot().set_metric("loss");
  w.plot().set_alpha(0.01);
  w.plot().set_show_raw(true);
  w.plot().fit_all();
  settle(&w);
  w.plot().fit_all();
  settle(&w);
  // Crosshair read-out at step 1234 (the Mamba spike).
  QCustomPlot* qcp = w.plot().plot();
  const QPoint at(int(qcp->xAxis->coordToPixel(1234)), qcp->axisRect()->center().y());
  QTest::mouseMove(qcp, at);
  settle();
  EXPECT_TRUE(w.grab().save(out + "/studio-curves.png"));

  w.plot().set_group_seeds(true);
  w.plot().set_log_y(true);
  w.plot().set_metric("val_loss");
  w.plot().set_x_axis(XAxis::kTokens);
  w.plot().fit_all();
  settle(&w);
  w.plot().fit_all();
  settle(&w);
  EXPECT_TRUE(w.plot().grab().save(out + "/studio-seed-band.png"));
  w.plot().set_group_seeds(false);
  w.plot().set_log_y(false);
  w.plot().set_x_axis(XAxis::kStep);

  w.select_runs({ids[0], ids[1], ids[2], ids[3]});
  w.tabs().setCurrentIndex(1);
  settle(&w);
  EXPECT_TRUE(w.grab().save(out + "/studio-compare.png"));

  w.select_runs({ids[3]});
  w.tabs().setCurrentIndex(2);
  w.heatmap().findChild<QComboBox*>("layer")->setCurrentText("3");  // the layer leaning on expert 5
  settle(&w);
  EXPECT_TRUE(w.heatmap().grab().save(out + "/studio-experts.png"));

  w.manager().enqueue("moe-mamba", "cpu", {"train", "x.json", "--run", "slow-moe-mamba"}, db);
  w.manager().enqueue("mamba", "cpu", {"train", "x.json", "--run", "slow-mamba"}, db);
  w.manager().enqueue("transformer-moe", "cuda:0", {"train", "x.json", "--run", "slow-tmoe"}, db);
  w.manager().enqueue("bad-config", "cuda:1", {"train", "x.json", "--run", "fail-bad"}, db);
  w.tabs().setCurrentIndex(3);
  EXPECT_TRUE(QTest::qWaitFor([&] { return w.manager().jobs()[0].step >= 150; }, 10000));
  settle(nullptr, 200);
  EXPECT_TRUE(w.grab().save(out + "/studio-queue.png"));
  w.manager().stop_all();
  EXPECT_TRUE(QTest::qWaitFor([&] { return w.manager().active_count() == 0; }, 10000));

  ExperimentDialog d;
  d.resize(1200, 820);
  d.show();
  settle();
  EXPECT_TRUE(d.grab().save(out + "/studio-new-experiment.png"));
}
