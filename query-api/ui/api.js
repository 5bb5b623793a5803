// The console's only way to the server: the public API with new-api's auth headers, and the
// credentials in this tab's session storage (never localStorage, never a cookie).

const STORAGE_KEY = "logbus.console.session";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    return session && session.token && session.id ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function authHeaders(session, extra = {}) {
  return {
    Authorization: session.token,
    "New-Api-User": String(session.id),
    "Accept-Language": navigator.language || "en",
    ...extra,
  };
}

// The query string of `params`, leaving out empty values (the API reads absent and empty
// filters alike, but shorter URLs read better in logs).
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && String(value).trim() !== "") {
      search.set(name, String(value).trim());
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// The message of a refused response: the envelope's, or the status when the body is not one.
export async function refusal(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string" && body.message) {
      return new ApiError(response.status, body.message);
    }
  } catch {
    // Not JSON: a proxy's page, say.
  }
  return new ApiError(response.status, `HTTP ${response.status}`);
}

// GETs `path` and returns the envelope's `data`, or throws an ApiError with its message.
export async function getData(session, path, params = {}) {
  const response = await fetch(`${path}${query(params)}`, {
    headers: authHeaders(session),
    cache: "no-store",
  });
  if (!response.ok) {
    throw await refusal(response);
  }
  const body = await response.json();
  if (!body.success) {
    throw new ApiError(response.status, body.message || "request failed");
  }
  return body.data;
}

// Checks the credentials and learns the role: every user may read their own stat, only an
// admin the site-wide one (403 otherwise).
export async function signIn(id, token) {
  const session = { id: Number(id), token: token.trim(), admin: false };
  if (!Number.isInteger(session.id) || session.id <= 0) {
    throw new ApiError(400, "The user id is a positive number.");
  }
  await getData(session, "/api/log/self/stat");
  try {
    await getData(session, "/api/log/stat");
    session.admin = true;
  } catch (error) {
    if (error.status !== 403) {
      throw error;
    }
  }
  return session;
}
