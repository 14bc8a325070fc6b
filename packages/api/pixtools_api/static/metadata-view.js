// The metadata document as readable tables. GPS coordinates are flagged as
// private data. Every value is set with textContent, never as HTML.

import { formatCoordinate } from "./format.js";

const MAX_VALUE_CHARS = 300;
const EXIF_SECTIONS = ["IFD0", "Exif", "GPS", "Interop", "IFD1"];

const CAMERA_TAGS = [
  ["Make", "IFD0", "Camera make"],
  ["Model", "IFD0", "Camera model"],
  ["LensModel", "Exif", "Lens"],
  ["DateTimeOriginal", "Exif", "Taken"],
  ["ExposureTime", "Exif", "Exposure time (s)"],
  ["FNumber", "Exif", "Aperture (f-number)"],
  ["ISOSpeedRatings", "Exif", "ISO"],
  ["PhotographicSensitivity", "Exif", "ISO"],
  ["FocalLength", "Exif", "Focal length (mm)"],
  ["Software", "IFD0", "Software"],
  ["Artist", "IFD0", "Artist"],
  ["Copyright", "IFD0", "Copyright"],
];

export function formatValue(value) {
  let text;
  if (value === null || value === undefined) text = "—";
  else if (typeof value === "boolean") text = value ? "yes" : "no";
  else if (Array.isArray(value)) text = value.map(formatValue).join(", ");
  else if (typeof value === "object") text = JSON.stringify(value);
  else text = String(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

function table(caption, rows, className = "") {
  const element = document.createElement("table");
  if (className) element.className = className;
  const captionElement = document.createElement("caption");
  captionElement.textContent = caption;
  element.append(captionElement);
  const body = document.createElement("tbody");
  for (const [name, value, flag] of rows) {
    const row = document.createElement("tr");
    const header = document.createElement("th");
    header.scope = "row";
    header.textContent = name;
    const cell = document.createElement("td");
    cell.textContent = formatValue(value);
    if (flag) {
      const mark = document.createElement("strong");
      mark.className = "private-flag";
      mark.textContent = flag;
      cell.append(" ", mark);
    }
    row.append(header, cell);
    body.append(row);
  }
  element.append(body);
  const wrapper = document.createElement("div");
  wrapper.className = "table-scroll";
  wrapper.append(element);
  return wrapper;
}

function imageRows(metadata) {
  const rows = [
    ["Format", metadata.format],
    ["Size", `${metadata.width} × ${metadata.height} px`],
  ];
  if (metadata.orientation && metadata.orientation !== 1) {
    rows.push(["Stored size", `${metadata.stored_width} × ${metadata.stored_height} px (EXIF orientation ${metadata.orientation})`]);
  }
  if (metadata.mode) rows.push(["Colour mode", metadata.mode]);
  if ("has_alpha" in metadata) rows.push(["Transparency", metadata.has_alpha]);
  if (metadata.frames && metadata.frames !== 1) {
    rows.push(["Frames", `${metadata.frames}${metadata.animated ? " (animated)" : ""}`]);
  }
  if (metadata.icc_profile) {
    rows.push(["Colour profile", `${metadata.icc_profile.description ?? "unnamed"} (${metadata.icc_profile.color_space ?? "?"})`]);
  }
  return rows;
}

function cameraRows(exif) {
  const rows = [];
  const seen = new Set();
  for (const [tag, section, label] of CAMERA_TAGS) {
    const value = exif?.[section]?.[tag];
    if (value === undefined || value === null || value === "" || seen.has(label)) continue;
    seen.add(label);
    rows.push([label, value]);
  }
  return rows;
}

function locationSection(gps) {
  if (!gps || typeof gps.latitude !== "number" || typeof gps.longitude !== "number") return null;
  const section = document.createElement("div");
  section.className = "private-data";
  section.setAttribute("role", "note");

  const heading = document.createElement("h4");
  heading.textContent = "Private data: location";
  const text = document.createElement("p");
  text.textContent =
    "This image records where it was taken. The converted results do not carry " +
    "this location, but the original file does: think before you share it.";

  const rows = [
    ["Latitude", formatCoordinate(gps.latitude, "N", "S"), "Private"],
    ["Longitude", formatCoordinate(gps.longitude, "E", "W"), "Private"],
    ["Decimal degrees", `${gps.latitude.toFixed(6)}, ${gps.longitude.toFixed(6)}`, "Private"],
  ];
  if (typeof gps.altitude === "number") rows.push(["Altitude", `${gps.altitude.toFixed(1)} m`, "Private"]);
  section.append(heading, text, table("GPS position", rows, "gps-table"));
  return section;
}

function detailsBlock(summaryText, content) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = summaryText;
  details.append(summary, content);
  return details;
}

export function renderMetadata(metadata) {
  const root = document.createElement("section");
  root.className = "metadata";
  root.setAttribute("aria-labelledby", "metadata-heading");
  const heading = document.createElement("h3");
  heading.id = "metadata-heading";
  heading.textContent = "Metadata";
  root.append(heading);

  const location = locationSection(metadata.gps);
  if (location) root.append(location);

  root.append(table("Image", imageRows(metadata)));
  const camera = cameraRows(metadata.exif);
  if (camera.length > 0) root.append(table("Camera", camera));

  const exifRows = [];
  for (const section of EXIF_SECTIONS) {
    for (const [name, value] of Object.entries(metadata.exif?.[section] ?? {})) {
      exifRows.push([`${section} · ${name}`, value, section === "GPS" ? "Private" : null]);
    }
  }
  if (exifRows.length > 0) {
    root.append(detailsBlock(`All EXIF tags (${exifRows.length})`, table("EXIF tags", exifRows)));
  }

  const iptcRows = Object.entries(metadata.iptc ?? {});
  if (iptcRows.length > 0) root.append(table("IPTC", iptcRows));

  if (typeof metadata.xmp === "string" && metadata.xmp) {
    const pre = document.createElement("pre");
    pre.className = "xmp";
    pre.textContent = metadata.xmp;
    root.append(detailsBlock(`XMP packet (${metadata.xmp.length.toLocaleString()} characters)`, pre));
  }

  if (Array.isArray(metadata.warnings) && metadata.warnings.length > 0) {
    const list = document.createElement("ul");
    list.className = "metadata-warnings";
    for (const warning of metadata.warnings) {
      const item = document.createElement("li");
      item.textContent = formatValue(warning);
      list.append(item);
    }
    const title = document.createElement("p");
    title.textContent = "Parts of the metadata could not be read:";
    root.append(title, list);
  }
  return root;
}
