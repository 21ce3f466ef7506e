/**
 * A loopback HTTP file server for the `data fetch` tests: byte ranges (optional), ETag/If-Range,
 * redirects, and a script of misbehaviour (error statuses, a connection dropped mid-file).
 */
import {createHash} from 'node:crypto'
import http, {type IncomingHttpHeaders} from 'node:http'
import type {AddressInfo} from 'node:net'

export type ScriptStep =
  | {status: number; headers?: Record<string, string>}
  /** Serve normally but destroy the socket after this many body bytes. */
  | {dropAfter: number}
  /** Serve normally but go silent (socket left open) after this many body bytes. */
  | {stallAfter: number}

export interface FileServerOptions {
  files: Record<string, Buffer>
  /** Honour Range requests (default true). */
  ranges?: boolean
  /** path -> target path, answered with 302. */
  redirects?: Record<string, string>
  /** One step per request, consumed in order; then every request is served normally. */
  script?: ScriptStep[]
}

export interface RecordedRequest {
  path: string
  headers: IncomingHttpHeaders
}

export interface FileServer {
  url(path: string): string
  requests: RecordedRequest[]
  /** Replace a file (a new version: its ETag changes). */
  setFile(path: string, data: Buffer): void
  close(): Promise<void>
}

export function etagOf(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`
}

export async function startFileServer(options: FileServerOptions): Promise<FileServer> {
  const files = {...options.files}
  const script = [...(options.script ?? [])]
  const ranges = options.ranges ?? true
  const requests: RecordedRequest[] = []

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push({path, headers: req.headers})
    const redirect = options.redirects?.[path]
    if (redirect) {
      res.writeHead(302, {location: redirect}).end()
      return
    }
    const step = script.shift()
    if (step && 'status' in step) {
      res.writeHead(step.status, {'content-length': '0', ...step.headers}).end()
      return
    }
    const data = files[path]
    if (!data) {
      res.writeHead(404, {'content-type': 'text/plain'}).end('not found')
      return
    }
    const etag = etagOf(data)
    let start = 0
    const range = ranges ? /^bytes=(\d+)-$/.exec(String(req.headers.range ?? '')) : null
    const ifRange = req.headers['if-range']
    if (range && (ifRange === undefined || ifRange === etag)) {
      start = Number(range[1])
      if (start >= data.length) {
        res.writeHead(416, {'content-range': `bytes */${data.length}`, 'content-length': '0'}).end()
        return
      }
      res.writeHead(206, {
        'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
        'content-length': String(data.length - start),
        etag,
        'accept-ranges': 'bytes',
      })
    } else {
      res.writeHead(200, {'content-length': String(data.length), etag, ...(ranges ? {'accept-ranges': 'bytes'} : {})})
    }
    const body = data.subarray(start)
    if (step && 'dropAfter' in step) {
      res.write(body.subarray(0, step.dropAfter), () => req.socket.destroy())
      return
    }
    if (step && 'stallAfter' in step) {
      res.write(body.subarray(0, step.stallAfter))
      return
    }
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    requests,
    setFile(path, data) {
      files[path] = data
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Deterministic non-repeating-looking bytes, so an offset error changes the checksum. */
export function makeData(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex')
}
