import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createNodeHttpGet} from '../../../src/data/fetch-http.js'
import {backoffMs, parseContentRange, parseRetryAfter} from '../../../src/data/fetch-http-download.js'
import {createProgressRenderer} from '../../../src/data/fetch-render.js'
import {type FetchDeps, type FetchEvent, fetchData, parseChecksum, parseSource, redactUrl, targetName} from '../../../src/data/fetch.js'
import {UserError} from '../../../src/util/errors.js'
import {type FileServer, type ScriptStep, makeData, md5, startFileServer} from '../../fakes/file-server.js'

const SIZE = 1_000_000
const DATA = makeData(SIZE, 7)
const MD5 = md5(DATA)

let root: string
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ups-fetch-unit-'))
})
after(async () => {
  await rm(root, {recursive: true, force: true})
})

let dirCount = 0
async function freshDir(): Promise<string> {
  return join(root, `d${dirCount++}`)
}

/** Real HTTP client, fake time: sleep records its delays and returns at once. */
function testDeps(): FetchDeps & {sleeps: number[]} {
  let clock = 1_700_000_000_000
  const sleeps: number[] = []
  return {
    http: createNodeHttpGet(),
    runner: {
      run: async () => {
        throw new Error('no rclone in HTTP tests')
      },
    },
    sleep: async (ms) => {
      sleeps.push(ms)
      clock += ms
    },
    now: () => (clock += 5),
    random: () => 0.5,
    env: {},
    sleeps,
  }
}

async function withServer<T>(options: {script?: ScriptStep[]; ranges?: boolean; redirects?: Record<string, string>}, fn: (s: FileServer) => Promise<T>): Promise<T> {
  const server = await startFileServer({files: {'/1D_Burgers_Sols_Nu0.01.hdf5': DATA}, ...options})
  try {
    return await fn(server)
  } finally {
    await server.close()
  }
}

const FILE = '/1D_Burgers_Sols_Nu0.01.hdf5'

async function rejectsWith(promise: Promise<unknown>, check: (e: UserError) => void): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`)
    check(error)
    return true
  })
}

describe('fetchData over HTTP', () => {
  it('downloads a file, verifies its md5 and leaves no temp files', async () => {
    await withServer({}, async (server) => {
      const to = await freshDir()
      const events: FetchEvent[] = []
      const result = await fetchData(server.url(FILE), {to, checksum: `md5:${MD5}`, onEvent: (e) => events.push(e)}, testDeps())
      assert.equal(result.path, join(to, '1D_Burgers_Sols_Nu0.01.hdf5'))
      assert.deepEqual(await readFile(result.path), DATA)
      assert.equal(result.bytes, SIZE)
      assert.equal(result.checksum, `md5:${MD5}`)
      assert.equal(result.verified, true)
      assert.equal(result.resumed, false)
      assert.equal(result.attempts, 1)
      assert.equal(result.skipped, false)
      assert.deepEqual(await readdir(to), ['1D_Burgers_Sols_Nu0.01.hdf5'])
      assert.equal(server.requests[0].headers.range, undefined)
      const last = events.filter((e) => e.type === 'progress').at(-1)
      assert.deepEqual(last && {bytes: last.bytes, total: last.total}, {bytes: SIZE, total: SIZE})
    })
  })

  it('accepts sha256 and reports an md5 when no checksum was asked for', async () => {
    await withServer({}, async (server) => {
      const sha = createHash('sha256').update(DATA).digest('hex')
      const verified = await fetchData(server.url(FILE), {to: await freshDir(), checksum: `sha256:${sha}`}, testDeps())
      assert.equal(verified.checksum, `sha256:${sha}`)
      assert.equal(verified.verified, true)
      const plain = await fetchData(server.url(FILE), {to: await freshDir()}, testDeps())
      assert.equal(plain.checksum, `md5:${MD5}`)
      assert.equal(plain.verified, false)
    })
  })

  it('resumes with Range after the connection drops mid-file', async () => {
    await withServer({script: [{dropAfter: 300_000}]}, async (server) => {
      const deps = testDeps()
      const events: FetchEvent[] = []
      const result = await fetchData(server.url(FILE), {to: await freshDir(), checksum: `md5:${MD5}`, onEvent: (e) => events.push(e)}, deps)
      assert.deepEqual(await readFile(result.path), DATA)
      assert.equal(result.resumed, true)
      assert.equal(result.attempts, 2)
      assert.equal(server.requests.length, 2)
      assert.equal(server.requests[1].headers.range, 'bytes=300000-')
      assert.equal(server.requests[1].headers['if-range'], `"${MD5}"`)
      assert.equal(deps.sleeps.length, 1)
      const retry = events.find((e) => e.type === 'retry')
      assert.match(retry?.type === 'retry' ? retry.reason : '', /closed/)
    })
  })

  it('keeps the part file when it gives up, and a rerun resumes from it', async () => {
    await withServer({script: [{dropAfter: 400_000}]}, async (server) => {
      const to = await freshDir()
      await rejectsWith(fetchData(server.url(FILE), {to, retries: 0, checksum: `md5:${MD5}`}, testDeps()), (e) => {
        assert.equal(e.exitCode, 3)
        assert.equal(e.code, 'DATA_FETCH_NETWORK')
        assert.match(e.hint ?? '', /400000 bytes are kept .*rerun/)
      })
      assert.deepEqual((await readdir(to)).sort(), ['.1D_Burgers_Sols_Nu0.01.hdf5.part', '.1D_Burgers_Sols_Nu0.01.hdf5.part.json'])
      const result = await fetchData(server.url(FILE), {to, checksum: `md5:${MD5}`}, testDeps())
      assert.equal(server.requests[1].headers.range, 'bytes=400000-')
      assert.equal(result.resumed, true)
      assert.equal(result.verified, true)
      assert.deepEqual(await readFile(result.path), DATA)
      assert.deepEqual(await readdir(to), ['1D_Burgers_Sols_Nu0.01.hdf5'])
    })
  })

  it('aborts a stalled connection after the idle timeout and resumes', async () => {
    await withServer({script: [{stallAfter: 200_000}]}, async (server) => {
      const events: FetchEvent[] = []
      const result = await fetchData(server.url(FILE), {to: await freshDir(), idleTimeoutMs: 300, checksum: `md5:${MD5}`, onEvent: (e) => events.push(e)}, testDeps())
      assert.equal(server.requests[1].headers.range, 'bytes=200000-')
      assert.equal(result.resumed, true)
      assert.deepEqual(await readFile(result.path), DATA)
      const retry = events.find((e) => e.type === 'retry')
      assert.match(retry?.type === 'retry' ? retry.reason : '', /no data received for 0.3 s/)
    })
  })

  it('restarts from byte 0 when the server ignores Range', async () => {
    await withServer({ranges: false, script: [{dropAfter: 300_000}]}, async (server) => {
      const events: FetchEvent[] = []
      const result = await fetchData(server.url(FILE), {to: await freshDir(), checksum: `md5:${MD5}`, onEvent: (e) => events.push(e)}, testDeps())
      assert.equal(server.requests[1].headers.range, 'bytes=300000-')
      assert.equal(result.resumed, false)
      assert.equal(result.verified, true)
      assert.deepEqual(await readFile(result.path), DATA)
      assert.ok(events.some((e) => e.type === 'note' && /did not resume/.test(e.message)))
    })
  })

  it('starts over when the file changed on the server between runs (If-Range)', async () => {
    await withServer({script: [{dropAfter: 300_000}]}, async (server) => {
      const to = await freshDir()
      await assert.rejects(fetchData(server.url(FILE), {to, retries: 0}, testDeps()))
      const v2 = makeData(SIZE + 1000, 99)
      server.setFile(FILE, v2)
      const result = await fetchData(server.url(FILE), {to, checksum: `md5:${md5(v2)}`}, testDeps())
      assert.equal(server.requests[1].headers.range, 'bytes=300000-')
      assert.equal(result.resumed, false)
      assert.deepEqual(await readFile(result.path), v2)
    })
  })

  it('finishes a part file that was complete but not yet renamed (416)', async () => {
    await withServer({}, async (server) => {
      const to = await freshDir()
      await fetchData(server.url(FILE), {to, retries: 0, checksum: 'md5:00000000000000000000000000000000'}, testDeps()).catch(() => {})
      // What a kill between the last byte and the rename leaves behind:
      await writeFile(join(to, '.1D_Burgers_Sols_Nu0.01.hdf5.part'), DATA)
      await writeFile(join(to, '.1D_Burgers_Sols_Nu0.01.hdf5.part.json'), JSON.stringify({url: server.url(FILE), validator: `"${MD5}"`}))
      const before = server.requests.length
      const result = await fetchData(server.url(FILE), {to, checksum: `md5:${MD5}`}, testDeps())
      assert.equal(server.requests[before].headers.range, `bytes=${SIZE}-`)
      assert.equal(result.verified, true)
      assert.deepEqual(await readdir(to), ['1D_Burgers_Sols_Nu0.01.hdf5'])
    })
  })

  it('refuses a server that keeps answering other ranges than asked', async () => {
    const wrongRange = {status: 206, headers: {'content-range': `bytes 5-9/${SIZE}`}}
    await withServer({script: [wrongRange, wrongRange, wrongRange, wrongRange]}, async (server) => {
      await rejectsWith(fetchData(server.url(FILE), {to: await freshDir()}, testDeps()), (e) => {
        assert.equal(e.code, 'DATA_FETCH_BAD_RANGE')
        assert.equal(e.exitCode, 3)
      })
      assert.equal(server.requests.length, 4)
    })
  })

  it('fails with exit 1 on a wrong checksum, naming both, and writes nothing under the final name', async () => {
    await withServer({}, async (server) => {
      const to = await freshDir()
      const wrong = 'e6d9a4f62baf9a29121a816b919e2770'
      await rejectsWith(fetchData(server.url(FILE), {to, checksum: `md5:${wrong}`}, testDeps()), (e) => {
        assert.equal(e.exitCode, 1)
        assert.equal(e.code, 'DATA_FETCH_CHECKSUM_MISMATCH')
        assert.match(e.message, new RegExp(`expected md5:${wrong}, got md5:${MD5}`))
      })
      assert.deepEqual(await readdir(to), [])
    })
  })

  it('fails with exit 3 on 404 without retrying', async () => {
    await withServer({}, async (server) => {
      const deps = testDeps()
      await rejectsWith(fetchData(server.url('/missing.h5'), {to: await freshDir()}, deps), (e) => {
        assert.equal(e.exitCode, 3)
        assert.equal(e.code, 'DATA_FETCH_HTTP_404')
        assert.match(e.message, /HTTP 404/)
      })
      assert.equal(server.requests.length, 1)
      assert.deepEqual(deps.sleeps, [])
    })
  })

  it('does not retry 403', async () => {
    await withServer({script: [{status: 403}]}, async (server) => {
      await rejectsWith(fetchData(server.url(FILE), {to: await freshDir()}, testDeps()), (e) => assert.equal(e.code, 'DATA_FETCH_HTTP_403'))
      assert.equal(server.requests.length, 1)
    })
  })

  it('retries 503 with exponential backoff and succeeds', async () => {
    await withServer({script: [{status: 503}, {status: 503}]}, async (server) => {
      const deps = testDeps()
      const result = await fetchData(server.url(FILE), {to: await freshDir(), checksum: `md5:${MD5}`}, deps)
      assert.equal(result.attempts, 3)
      assert.equal(result.verified, true)
      assert.deepEqual(deps.sleeps, [backoffMs(1, 0.5), backoffMs(2, 0.5)])
      assert.ok(deps.sleeps[1] > deps.sleeps[0])
    })
  })

  it('waits as long as Retry-After says on 429', async () => {
    await withServer({script: [{status: 429, headers: {'retry-after': '7'}}]}, async (server) => {
      const deps = testDeps()
      const result = await fetchData(server.url(FILE), {to: await freshDir()}, deps)
      assert.equal(result.attempts, 2)
      assert.deepEqual(deps.sleeps, [7000])
    })
  })

  it('gives up after --retries failures without progress', async () => {
    await withServer({script: [{status: 500}, {status: 502}, {status: 503}]}, async (server) => {
      await rejectsWith(fetchData(server.url(FILE), {to: await freshDir(), retries: 2}, testDeps()), (e) => {
        assert.equal(e.exitCode, 3)
        assert.match(e.message, /after 3 attempts: HTTP 503/)
      })
      assert.equal(server.requests.length, 3)
    })
  })

  it('follows redirects (data portals redirect to storage)', async () => {
    await withServer({redirects: {'/api/access/datafile/281363': FILE}}, async (server) => {
      const result = await fetchData(server.url('/api/access/datafile/281363'), {to: await freshDir(), name: 'burgers.hdf5', checksum: `md5:${MD5}`}, testDeps())
      assert.ok(result.path.endsWith('burgers.hdf5'))
      assert.deepEqual(server.requests.map((r) => r.path), ['/api/access/datafile/281363', FILE])
    })
  })

  it('skips a file that is already there with the right checksum, without a request', async () => {
    await withServer({}, async (server) => {
      const to = await freshDir()
      await fetchData(server.url(FILE), {to}, testDeps())
      const n = server.requests.length
      const again = await fetchData(server.url(FILE), {to, checksum: `md5:${MD5}`}, testDeps())
      assert.equal(server.requests.length, n)
      assert.deepEqual({skipped: again.skipped, verified: again.verified, attempts: again.attempts, bytes: again.bytes}, {skipped: true, verified: true, attempts: 0, bytes: SIZE})
      const unverified = await fetchData(server.url(FILE), {to}, testDeps())
      assert.deepEqual({skipped: unverified.skipped, verified: unverified.verified}, {skipped: true, verified: false})
      assert.equal(server.requests.length, n)
      const forced = await fetchData(server.url(FILE), {to, force: true}, testDeps())
      assert.equal(forced.skipped, false)
      assert.equal(server.requests.length, n + 1)
    })
  })

  it('replaces an existing file whose checksum is wrong', async () => {
    await withServer({}, async (server) => {
      const to = await freshDir()
      await fetchData(server.url(FILE), {to}, testDeps())
      const path = join(to, '1D_Burgers_Sols_Nu0.01.hdf5')
      const corrupt = Buffer.from(DATA)
      corrupt[12345] ^= 0xff
      await writeFile(path, corrupt)
      const result = await fetchData(server.url(FILE), {to, checksum: `md5:${MD5}`}, testDeps())
      assert.equal(result.skipped, false)
      assert.deepEqual(await readFile(path), DATA)
    })
  })
})

describe('fetch argument parsing', () => {
  it('parses and rejects checksums', () => {
    assert.deepEqual(parseChecksum('MD5:E6D9A4F62BAF9A29121A816B919E2770'), {algorithm: 'md5', hex: 'e6d9a4f62baf9a29121a816b919e2770'})
    for (const bad of ['md5:abc', 'crc32:12345678', 'e6d9a4f62baf9a29121a816b919e2770', `sha256:${'a'.repeat(63)}`]) {
      assert.throws(() => parseChecksum(bad), (e: unknown) => e instanceof UserError && e.exitCode === 2 && e.code === 'DATA_FETCH_BAD_CHECKSUM')
    }
  })

  it('parses sources and names', () => {
    const r = parseSource('rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5')
    assert.deepEqual(r.kind === 'rclone' && [r.remote, r.path, r.spec], ['B2', 'pdebench/full/burgers1d/burgers1d_train_000.h5', 'B2:pdebench/full/burgers1d/burgers1d_train_000.h5'])
    assert.equal(targetName(r), 'burgers1d_train_000.h5')
    assert.equal(targetName(parseSource('https://example.org/data/1D%20Burgers.hdf5?x=1')), '1D Burgers.hdf5')
    for (const bad of ['ftp://example.org/a.h5', 'data/a.h5', 'rclone:nocolon']) {
      assert.throws(() => parseSource(bad), (e: unknown) => e instanceof UserError && e.exitCode === 2)
    }
    assert.throws(() => targetName(parseSource('https://example.org/')), /Cannot tell a file name/)
    assert.throws(() => targetName(parseSource('https://example.org/a.h5'), '../a.h5'), /not a plain file name/)
  })

  it('redacts passwords and signatures in URLs', () => {
    const shown = redactUrl('https://user:hunter22@example.org/a.h5?X-Amz-Signature=abc123&part=1')
    assert.doesNotMatch(shown, /hunter22|abc123/)
    assert.match(shown, /part=1/)
  })

  it('parses Retry-After and Content-Range', () => {
    const now = Date.parse('2025-10-16T12:00:00Z')
    assert.equal(parseRetryAfter('3', now), 3000)
    assert.equal(parseRetryAfter('Thu, 16 Oct 2025 12:00:10 GMT', now), 10_000)
    assert.equal(parseRetryAfter('99999', now), 600_000)
    assert.equal(parseRetryAfter('soon', now), undefined)
    assert.deepEqual(parseContentRange('bytes 100-199/200'), {start: 100, end: 199, total: 200})
    assert.deepEqual(parseContentRange('bytes */200'), {start: undefined, end: undefined, total: 200})
    assert.equal(parseContentRange('items 1-2/3'), undefined)
    assert.ok(backoffMs(3, 0) >= 2000 && backoffMs(3, 0.999) < 4000)
    assert.equal(backoffMs(30, 0.999), Math.round(60_000 * 0.9995))
  })
})

describe('progress rendering', () => {
  const feed = (isTTY: boolean) => {
    let out = ''
    let t = 0
    const sink = createProgressRenderer({isTTY, write: (s) => (out += s), now: () => (t += 1000)})
    sink.onEvent({type: 'start', source: 'http://h/a.h5', path: '/d/a.h5', offset: 0, total: 1000, attempt: 1})
    for (let b = 0; b <= 1000; b += 25) sink.onEvent({type: 'progress', bytes: b, total: 1000, rateBps: 100})
    sink.done()
    return out
  }

  it('prints a plain line per 10% when not on a terminal', () => {
    const lines = feed(false).trim().split('\n')
    assert.equal(lines.length, 12)
    assert.match(lines[1], /0\.0%/)
    assert.match(lines.at(-1)!, /1000 B \/ 1000 B 100\.0%/)
    assert.doesNotMatch(feed(false), /\r/)
  })

  it('redraws one line on a terminal', () => {
    const out = feed(true)
    assert.match(out, /\r\x1b\[2K.*ETA/)
    assert.equal(out.split('\n').length, 3)
  })
})
