/**
 * The HTTP(S) client `ups data fetch` uses, on Node's own http/https modules (no dependency).
 * It follows redirects (data portals such as DaRUS answer a file URL with a redirect to storage)
 * and turns every socket-level failure into a NetworkError that says whether a retry can help.
 */
import http, {type ClientRequest, type IncomingMessage} from 'node:http'
import https from 'node:https'

export interface HttpResponse {
  status: number
  /** Lower-case header names. */
  headers: Record<string, string | undefined>
  /** The URL that answered, after redirects. */
  url: URL
  body: AsyncIterable<Uint8Array>
  /** Stops reading and frees the socket (safe to call twice). */
  close(): void
}

export interface HttpRequestOptions {
  headers: Record<string, string>
  /** Abort when the connection is idle this long (no bytes either way). */
  timeoutMs: number
}

export type HttpGet = (url: URL, options: HttpRequestOptions) => Promise<HttpResponse>

/** A failure below HTTP (DNS, TCP, TLS, a dropped connection, a timeout). */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly retryable: boolean,
  ) {
    super(message)
    this.name = 'NetworkError'
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])
const MAX_REDIRECTS = 10
// A wrong host name or a bad certificate does not fix itself between attempts.
const PERMANENT_CODES = new Set([
  'ENOTFOUND',
  'ERR_INVALID_URL',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

export function toNetworkError(err: unknown): NetworkError {
  if (err instanceof NetworkError) return err
  const e = err as NodeJS.ErrnoException
  const code = e?.code
  const message = code === 'ECONNRESET' && e.message === 'aborted' ? 'the connection was closed mid-transfer' : (e?.message ?? String(err))
  return new NetworkError(message, code, !PERMANENT_CODES.has(code ?? ''))
}

export function createNodeHttpGet(userAgent = 'ups-data-fetch'): HttpGet {
  return async (url, options) => {
    let current = url
    for (let hop = 0; ; hop++) {
      const {req, res} = await requestOnce(current, options, userAgent)
      const location = res.headers.location
      if (REDIRECTS.has(res.statusCode ?? 0) && location) {
        res.resume()
        if (hop >= MAX_REDIRECTS) throw new NetworkError(`more than ${MAX_REDIRECTS} redirects`, 'EREDIRECTS', false)
        current = new URL(location, current)
        if (current.protocol !== 'http:' && current.protocol !== 'https:') {
          throw new NetworkError(`redirected to an unsupported URL scheme (${current.protocol})`, 'EREDIRECTS', false)
        }
        continue
      }
      return wrap(req, res, current)
    }
  }
}

function requestOnce(url: URL, options: HttpRequestOptions, userAgent: string): Promise<{req: ClientRequest; res: IncomingMessage}> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http
    // identity: a gzip-encoded body would break byte ranges and checksums.
    const headers = {'user-agent': userAgent, 'accept-encoding': 'identity', ...options.headers}
    const req = mod.get(url, {headers}, (res) => resolve({req, res}))
    req.setTimeout(options.timeoutMs, () => {
      const err = Object.assign(new Error(`no data received for ${options.timeoutMs / 1000} s`), {code: 'ETIMEDOUT'})
      req.destroy(err)
    })
    req.on('error', (err) => reject(toNetworkError(err)))
  })
}

function wrap(req: ClientRequest, res: IncomingMessage, url: URL): HttpResponse {
  const headers: Record<string, string | undefined> = {}
  for (const [key, value] of Object.entries(res.headers)) headers[key] = Array.isArray(value) ? value.join(', ') : value
  return {
    status: res.statusCode ?? 0,
    headers,
    url,
    body: eagerBody(req, res),
    close() {
      if (!res.destroyed) res.destroy()
    },
  }
}

const HIGH_WATER = 8 * 1024 * 1024
const LOW_WATER = 1024 * 1024

/**
 * Reads the body eagerly into a bounded queue. A plain `for await` over the response loses the
 * chunks still buffered in the stream when the connection drops; this hands over every byte that
 * arrived before the error, so a resume starts exactly where the data stopped.
 */
function eagerBody(req: ClientRequest, res: IncomingMessage): AsyncIterable<Uint8Array> {
  const queue: Buffer[] = []
  let queued = 0
  let ended = false
  let failure: unknown
  let wake: (() => void) | undefined
  const notify = () => {
    wake?.()
    wake = undefined
  }
  res.on('data', (chunk: Buffer) => {
    queue.push(chunk)
    queued += chunk.length
    if (queued > HIGH_WATER) res.pause()
    notify()
  })
  res.on('end', () => {
    ended = true
    notify()
  })
  // The request carries the precise reason (e.g. our idle timeout); the response only says "aborted".
  req.on('error', (error) => {
    failure ??= error
    notify()
  })
  res.on('error', (error) => {
    setImmediate(() => {
      failure ??= error
      notify()
    })
  })
  res.on('close', () => {
    setImmediate(() => {
      if (!ended && !res.complete) failure ??= Object.assign(new Error('aborted'), {code: 'ECONNRESET'})
      notify()
    })
  })
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const chunk = queue.shift()
        if (chunk) {
          queued -= chunk.length
          if (res.isPaused() && queued < LOW_WATER) res.resume()
          yield chunk
          continue
        }
        if (failure !== undefined) throw toNetworkError(failure)
        if (ended) return
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
}
