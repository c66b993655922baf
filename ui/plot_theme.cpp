// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/plot_theme.h"

#include <QApplication>
#include <QStyle>
#include <algorithm>
#include <cmath>

#include "ui/qcp.h"

namespace mmlab::ui {

namespace {

QColor mix(const QColor& a, const QColor& b, double t) {
  return QColor::fromRgbF(float(a.redF() * (1 - t) + b.redF() * t),
                          float(a.greenF() * (1 - t) + b.greenF() * t),
                          float(a.blueF() * (1 - t) + b.blueF() * t));
}

double luminance(const QColor& c) {
  auto channel = [](double v) {
    return v <= 0.03928 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF());
}

}  // namespace

double contrast_ratio(const QColor& a, const QColor& b) {
  const double la = luminance(a), lb = luminance(b);
  return (std::max(la, lb) + 0.05) / (std::min(la, lb) + 0.05);
}

QColor readable_on(QColor color, const QColor& background) {
  if (background.lightness() >= 128) return color;
  for (int i = 0; i < 12 && contrast_ratio(color, background) < 3.0; ++i)
    color = color.lighter(115);
  return color;
}

Theme theme_from_name(const QString& name) {
  if (name == QLatin1String("light")) return Theme::kLight;
  if (name == QLatin1String("dark")) return Theme::kDark;
  return Theme::kSystem;
}

QString theme_name(Theme theme) {
  switch (theme) {
    case Theme::kLight:
      return QStringLiteral("light");
    case Theme::kDark:
      return QStringLiteral("dark");
    case Theme::kSystem:
      break;
  }
  return QStringLiteral("system");
}

bool is_dark(const QPalette& palette) {
  return palette.color(QPalette::Base).lightness() < palette.color(QPalette::Text).lightness();
}

QPalette dark_palette() {
  QPalette p;
  const QColor window(0x2b, 0x2b, 0x2b), base(0x1e, 0x1e, 0x1e), text(0xe6, 0xe6, 0xe6);
  const QColor disabled(0x80, 0x80, 0x80), highlight(0x2a, 0x82, 0xda);
  p.setColor(QPalette::Window, window);
  p.setColor(QPalette::WindowText, text);
  p.setColor(QPalette::Base, base);
  p.setColor(QPalette::AlternateBase, QColor(0x26, 0x26, 0x26));
  p.setColor(QPalette::ToolTipBase, window);
  p.setColor(QPalette::ToolTipText, text);
  p.setColor(QPalette::PlaceholderText, disabled);
  p.setColor(QPalette::Text, text);
  p.setColor(QPalette::Button, QColor(0x35, 0x35, 0x35));
  p.setColor(QPalette::ButtonText, text);
  p.setColor(QPalette::BrightText, Qt::red);
  p.setColor(QPalette::Link, QColor(0x5c, 0xa8, 0xf0));
  p.setColor(QPalette::Highlight, highlight);
  p.setColor(QPalette::HighlightedText, Qt::white);
  p.setColor(QPalette::Light, QColor(0x50, 0x50, 0x50));
  p.setColor(QPalette::Midlight, QColor(0x40, 0x40, 0x40));
  p.setColor(QPalette::Mid, QColor(0x30, 0x30, 0x30));
  p.setColor(QPalette::Dark, QColor(0x18, 0x18, 0x18));
  p.setColor(QPalette::Shadow, Qt::black);
  for (QPalette::ColorRole r : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
    p.setColor(QPalette::Disabled, r, disabled);
  return p;
}

QPalette light_palette() {
  return QApplication::style()->standardPalette();
}

void apply_theme(Theme theme) {
  switch (theme) {
    case Theme::kSystem:
      // A palette with no role set gives the application back the platform theme's palette
      // (and so the desktop's own light or dark mode).
      QApplication::setPalette(QPalette());
      break;
    case Theme::kLight:
      QApplication::setPalette(light_palette());
      break;
    case Theme::kDark:
      QApplication::setPalette(dark_palette());
      break;
  }
}

void apply_plot_theme(QCustomPlot* plot, const QPalette& palette) {
  const QColor background = palette.color(QPalette::Base);
  const QColor text = palette.color(QPalette::Text);
  const QColor axis = mix(background, text, 0.6);
  const QColor grid = mix(background, text, 0.18);
  const QColor subgrid = mix(background, text, 0.09);
  plot->setBackground(background);
  plot->axisRect()->setBackground(background);
  QList<QCPAxis*> axes = plot->axisRect()->axes();
  // A colour scale (the expert heat map's) has an axis of its own.
  for (int i = 0; i < plot->plotLayout()->elementCount(); ++i)
    if (auto* scale = qobject_cast<QCPColorScale*>(plot->plotLayout()->elementAt(i)))
      axes << scale->axis();
  for (QCPAxis* a : axes) {
    a->setBasePen(QPen(axis, 1));
    a->setTickPen(QPen(axis, 1));
    a->setSubTickPen(QPen(axis, 1));
    a->setTickLabelColor(text);
    a->setLabelColor(text);
    a->grid()->setPen(QPen(grid, 1, Qt::DotLine));
    a->grid()->setSubGridPen(QPen(subgrid, 1, Qt::DotLine));
    a->grid()->setZeroLinePen(QPen(grid, 1));
  }
  if (plot->legend) {
    QColor fill = background;
    fill.setAlpha(220);  // curves under the legend still show through a little
    plot->legend->setBrush(fill);
    plot->legend->setBorderPen(QPen(axis, 1));
    plot->legend->setTextColor(text);
  }
}

}  // namespace mmlab::ui
