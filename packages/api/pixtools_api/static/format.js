// Formatting of sizes, times and operation names for display.

const OPERATION_LABELS = {
  jpg: "JPEG",
  png: "PNG",
  webp: "WebP",
  avif: "AVIF",
  denoise: "Denoise",
  metadata: "Metadata",
};

const OPERATION_DESCRIPTIONS = {
  jpg: "Lossy, small files, no transparency.",
  png: "Lossless, keeps transparency.",
  webp: "Lossy, smaller than JPEG, keeps transparency.",
  avif: "Lossy, smallest files, keeps transparency.",
  denoise: "Removes sensor noise with a neural network (DnCNN). Slower.",
  metadata: "Reads EXIF, GPS, IPTC and XMP data.",
};

export function operationLabel(name) {
  return OPERATION_LABELS[name] ?? name;
}

export function operationDescription(name) {
  return OPERATION_DESCRIPTIONS[name] ?? "";
}

export function formatBytes(count) {
  if (!Number.isFinite(count)) return "";
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`;
  if (count < 1024 ** 3) return `${(count / 1024 ** 2).toFixed(1)} MiB`;
  return `${(count / 1024 ** 3).toFixed(1)} GiB`;
}

export function formatPixels(count) {
  return `${(count / 1e6).toLocaleString(undefined, { maximumFractionDigits: 1 })} MP`;
}

export function formatDateTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// "in 23 h", "in 5 min", "expired".
export function formatExpiry(iso, now = Date.now()) {
  const remaining = new Date(iso).getTime() - now;
  if (!Number.isFinite(remaining)) return "";
  if (remaining <= 0) return "expired";
  const minutes = Math.round(remaining / 60000);
  if (minutes < 60) return `expires in ${Math.max(1, minutes)} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `expires in ${hours} h`;
  return `expires in ${Math.round(hours / 24)} days`;
}

// Seconds between two ISO timestamps, as "1.2 s"; empty when either is missing.
export function formatDuration(startIso, endIso) {
  if (!startIso || !endIso) return "";
  const seconds = (new Date(endIso).getTime() - new Date(startIso).getTime()) / 1000;
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

// Decimal degrees as "40.689200° N".
export function formatCoordinate(value, positive, negative) {
  const hemisphere = value >= 0 ? positive : negative;
  return `${Math.abs(value).toFixed(6)}° ${hemisphere}`;
}

export function formatStatus(status) {
  return String(status ?? "").toLowerCase().replaceAll("_", " ");
}
