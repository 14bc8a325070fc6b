// Client-side checks of a chosen file against the limits the API publishes.
// The API checks everything again; these only save a pointless upload.

import { formatBytes, formatPixels } from "./format.js";

// Used while GET /api/limits has no input_formats list.
const FALLBACK_INPUT_FORMATS = [
  { format: "JPEG", content_types: ["image/jpeg"], extensions: ["jpg", "jpeg", "jpe"] },
  { format: "PNG", content_types: ["image/png"], extensions: ["png"] },
  { format: "WEBP", content_types: ["image/webp"], extensions: ["webp"] },
  { format: "AVIF", content_types: ["image/avif"], extensions: ["avif"] },
  { format: "GIF", content_types: ["image/gif"], extensions: ["gif"] },
  { format: "TIFF", content_types: ["image/tiff"], extensions: ["tif", "tiff"] },
];

const FORMAT_NAMES = { WEBP: "WebP", HEIC: "HEIC/HEIF", JXL: "JPEG XL" };

export function inputFormats(limits) {
  return Array.isArray(limits.input_formats) && limits.input_formats.length > 0
    ? limits.input_formats
    : FALLBACK_INPUT_FORMATS;
}

export function formatName(format) {
  return FORMAT_NAMES[format] ?? format;
}

function ascii(bytes, start, end) {
  return String.fromCharCode(...bytes.slice(start, end));
}

// Detect the format from the first bytes, as the API does. Some unsupported
// formats are detected too, so the message can name the file's format.
export function sniffFormat(bytes) {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "JPEG";
  if (ascii(bytes, 0, 8) === "\x89PNG\r\n\x1a\n") return "PNG";
  if (ascii(bytes, 0, 4) === "GIF8") return "GIF";
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return "WEBP";
  if (ascii(bytes, 0, 4) === "II*\0" || ascii(bytes, 0, 4) === "MM\0*") return "TIFF";
  if (ascii(bytes, 4, 8) === "ftyp") {
    const brand = ascii(bytes, 8, 12);
    if (brand === "avif" || brand === "avis") return "AVIF";
    if (["heic", "heix", "hevc", "heim", "heis", "mif1", "msf1"].includes(brand)) return "HEIC";
  }
  if (ascii(bytes, 0, 2) === "BM") return "BMP";
  if (ascii(bytes, 0, 4) === "%PDF") return "PDF";
  if (bytes[0] === 0xff && bytes[1] === 0x0a) return "JXL";
  if (ascii(bytes, 4, 12) === "JXL \r\n\x87\n") return "JXL";
  if (ascii(bytes, 0, 4) === "8BPS") return "PSD";
  return null;
}

export async function readFormat(file) {
  const head = new Uint8Array(await file.slice(0, 32).arrayBuffer());
  return sniffFormat(head);
}

// Return problems (strings) with the file's size and type; empty when fine.
export async function checkFile(file, limits) {
  const problems = [];
  const accepted = inputFormats(limits);
  const names = accepted.map((entry) => formatName(entry.format)).join(", ");

  if (file.size === 0) {
    problems.push(`${file.name} is empty. Choose an image file.`);
    return problems;
  }
  if (file.size > limits.max_upload_bytes) {
    problems.push(
      `${file.name} is ${formatBytes(file.size)}, more than the limit of ` +
        `${formatBytes(limits.max_upload_bytes)}. Choose a smaller file, or export ` +
        "the image at a lower resolution first.",
    );
  }

  const format = await readFormat(file);
  const supported = accepted.some((entry) => entry.format === format);
  if (!supported) {
    const description = format ? `a ${formatName(format)} file` : "not an image format the service reads";
    problems.push(`${file.name} is ${description}. Supported formats: ${names}.`);
  }
  return problems;
}

// Problems with the decoded size; width and height come from the preview.
export function checkDimensions(width, height, limits) {
  const problems = [];
  if (width * height > limits.max_image_pixels) {
    problems.push(
      `The image has ${formatPixels(width * height)}, more than the limit of ` +
        `${formatPixels(limits.max_image_pixels)}. Scale it down first.`,
    );
  }
  if (Math.max(width, height) > limits.max_image_side) {
    problems.push(
      `The image is ${width} × ${height} pixels; no side may exceed ` +
        `${limits.max_image_side} pixels. Scale it down first.`,
    );
  }
  return problems;
}

export function acceptAttribute(limits) {
  const entries = inputFormats(limits);
  const types = entries.flatMap((entry) => entry.content_types);
  const extensions = entries.flatMap((entry) => entry.extensions.map((ext) => `.${ext}`));
  return [...types, ...extensions].join(",");
}
