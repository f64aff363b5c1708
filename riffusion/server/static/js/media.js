// Bytes, blobs and downloads: the glue between data URLs from the server and the browser's
// audio and image APIs.

export function dataUrlToBytes(dataUrl) {
  const comma = dataUrl.indexOf(",");
  const meta = dataUrl.slice(5, comma);
  const payload = dataUrl.slice(comma + 1);
  if (!meta.endsWith(";base64")) return new TextEncoder().encode(decodeURIComponent(payload));
  const binary = atob(payload);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function dataUrlToBlob(dataUrl) {
  const type = dataUrl.slice(5, dataUrl.indexOf(",")).split(";")[0] || "application/octet-stream";
  return new Blob([dataUrlToBytes(dataUrl)], { type });
}

export function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// decodeAudioData needs a context but not a running one: an OfflineAudioContext decodes without
// the user gesture that starting audio output requires.
let decoder = null;

export function decodeAudio(bytes, context = null) {
  const ctx = context || (decoder ||= new OfflineAudioContext(2, 1, 44100));
  // decodeAudioData detaches the buffer it is given: hand it a copy.
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return ctx.decodeAudioData(copy);
}

export function decodeAudioDataUrl(dataUrl, context = null) {
  return decodeAudio(dataUrlToBytes(dataUrl), context);
}

export function loadImage(src) {
  const image = new Image();
  image.decoding = "async";
  image.src = src;
  return image.decode().then(() => image);
}

/** A PNG of any image source (the server sends JPEG; people expect the spectrogram as PNG). */
export async function imageToPngBlob(src) {
  const image = typeof src === "string" ? await loadImage(src) : src;
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth || image.width;
  canvas.height = image.naturalHeight || image.height;
  canvas.getContext("2d").drawImage(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

export function downloadBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // Give the browser time to start the download before the URL goes away.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A file name out of a prompt: "Jazz with piano!" -> "jazz-with-piano". */
export function slug(text, fallback = "riffusion") {
  const cleaned = String(text || "")
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^\w\s-]/g, "")
    .trim()
    .replace(/[\s_-]+/g, "-")
    .slice(0, 60);
  return cleaned || fallback;
}

export function formatTime(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const minutes = Math.floor(total / 60);
  return `${minutes}:${String(total % 60).padStart(2, "0")}`;
}
