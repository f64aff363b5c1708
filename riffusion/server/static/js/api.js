// The server's REST API (docs/api.md). URLs are relative to the page, so the app also works when
// the server is mounted under a path prefix.

export class ApiError extends Error {
  constructor(message, { status = 0, retryAfter = null, body = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

export function apiUrl(path) {
  return new URL(path, document.baseURI).toString();
}

/** One line for people out of an error body: `message`, else FastAPI's `detail`. */
function errorMessage(body, status) {
  if (body && typeof body.message === "string") return body.message;
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((problem) => `${(problem.loc || []).slice(1).join(".") || "input"}: ${problem.msg}`)
      .join("; ");
  }
  return `the server answered ${status}`;
}

async function request(path, { method = "GET", body, signal } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path), {
      method,
      signal,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("cannot reach the server; is `riffusion serve` running?");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const retry = Number(response.headers.get("Retry-After"));
    throw new ApiError(errorMessage(data, response.status), {
      status: response.status,
      retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
      body: data,
    });
  }
  return data;
}

export const getHealth = (signal) => request("health", { signal });
export const getSeeds = () => request("api/seeds");
export const getMasks = () => request("api/masks");
export const getPresets = () => request("api/presets");
export const getLoras = () => request("api/loras");
export const seedImageUrl = (id) => apiUrl(`api/seeds/${encodeURIComponent(id)}.png`);

export function runInference(input, { signal } = {}) {
  return request("run_inference/", { method: "POST", body: input, signal });
}

// Not (yet) in docs/api.md: the client is written against these names so the server can add
// them as they are. image: a PNG data URL -> {"audio": MP3 data URL, "duration_s"}.
export function imageToAudio(image, { signal } = {}) {
  return request("api/image_to_audio", { method: "POST", body: { image }, signal });
}

// audio: a WAV data URL of one clip, prompt: a PromptInput ({prompt, seed, denoising, guidance,
// negative_prompt}) -> InferenceOutput ({"image", "audio", "duration_s"}).
export function audioToAudio(body, { signal } = {}) {
  return request("api/audio_to_audio", { method: "POST", body, signal });
}

let openApiPaths = null;

/** Whether the server offers an endpoint, read from its OpenAPI schema (fetched once). */
export async function hasEndpoint(path) {
  if (!openApiPaths) {
    openApiPaths = request("openapi.json")
      .then((schema) => new Set(Object.keys((schema && schema.paths) || {})))
      .catch(() => new Set());
  }
  return (await openApiPaths).has(path);
}

export function jamSocketUrl() {
  const url = new URL("api/jam", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
