// One receiver's power spectrum drawn on a canvas: offset from the tuned frequency
// (kHz) across, dBFS/Hz up, with the measured signal band shaded.

const PAD = { left: 34, right: 6, top: 6, bottom: 18 };

function niceStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
}

export function drawSpectrum(canvas, spectrum) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 128;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);

  const xs = spectrum.frequency_offset_hz.map((f) => f / 1000);
  const ys = spectrum.psd_dbfs_per_hz;
  const xMin = xs[0];
  const xMax = xs[xs.length - 1];
  const sorted = [...ys].sort((a, b) => a - b);
  const yMin = sorted[Math.floor(sorted.length * 0.02)] - 5;
  const yMax = sorted[sorted.length - 1] + 3;
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const x = (v) => PAD.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const y = (v) => PAD.top + (1 - (Math.max(v, yMin) - yMin) / (yMax - yMin)) * plotH;

  ctx.font = "10px DejaVu Sans, sans-serif";
  ctx.fillStyle = "#5b6575";
  ctx.strokeStyle = "#e3e6eb";
  ctx.lineWidth = 1;
  const yStep = niceStep(yMax - yMin, 4);
  for (let v = Math.ceil(yMin / yStep) * yStep; v <= yMax; v += yStep) {
    ctx.beginPath();
    ctx.moveTo(PAD.left, y(v));
    ctx.lineTo(width - PAD.right, y(v));
    ctx.stroke();
    ctx.fillText(String(Math.round(v)), 2, y(v) + 3);
  }
  const xStep = niceStep(xMax - xMin, 4);
  for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep) {
    ctx.fillText(`${v}`, x(v) - 6, height - 4);
  }
  ctx.strokeStyle = "#1f5fbf";
  ctx.beginPath();
  xs.forEach((v, i) => (i ? ctx.lineTo(x(v), y(ys[i])) : ctx.moveTo(x(v), y(ys[i]))));
  ctx.stroke();
}
