// A small canvas chart of the last minute of sales: revenue per second as bars, orders
// per second as a line, each on its own scale. Drawn by hand, sharp on any screen.

export function drawSalesChart(canvas, ticks, formatAmount) {
  const dpr = window.devicePixelRatio || 1;
  const { width, height } = canvas.getBoundingClientRect();
  if (!width || !height) return;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, width, height);

  const pad = { left: 64, right: 40, top: 12, bottom: 24 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const slots = 60;
  const data = ticks.slice(-slots);
  // Round scales: whole currency units and whole orders at every grid line.
  const maxRevenue = Math.ceil(Math.max(400, ...data.map((t) => (t.revenue ? t.revenue.amount : 0))) / 400) * 400;
  const maxOrders = Math.ceil(Math.max(4, ...data.map((t) => t.orders)) / 4) * 4;
  const slot = w / slots;
  const x0 = pad.left + (slots - data.length) * slot;

  // Grid and left axis (revenue).
  g.strokeStyle = "#dde1e8";
  g.fillStyle = "#5b6475";
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + h - (h * i) / 4;
    g.beginPath();
    g.moveTo(pad.left, y);
    g.lineTo(pad.left + w, y);
    g.stroke();
    g.textAlign = "right";
    g.fillText(formatAmount((maxRevenue * i) / 4), pad.left - 6, y + 4);
    g.textAlign = "left";
    g.fillText(String(Math.round((maxOrders * i) / 4)), pad.left + w + 6, y + 4);
  }
  g.textAlign = "center";
  g.fillText("60 s ago", pad.left + 24, height - 6);
  g.fillText("now", pad.left + w - 12, height - 6);

  // Revenue bars.
  g.fillStyle = "rgba(36, 87, 214, 0.55)";
  data.forEach((t, i) => {
    const bh = (h * (t.revenue ? t.revenue.amount : 0)) / maxRevenue;
    g.fillRect(x0 + i * slot + 1, pad.top + h - bh, Math.max(1, slot - 2), bh);
  });

  // Orders line.
  g.strokeStyle = "#137a3a";
  g.lineWidth = 2;
  g.beginPath();
  data.forEach((t, i) => {
    const x = x0 + i * slot + slot / 2;
    const y = pad.top + h - (h * t.orders) / maxOrders;
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}
