// `ups data fetch` as a user runs it: spawns bin/run.js (run `npm run build` first) against a
// loopback HTTP server and Debian's rclone with a local remote.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {execa} from 'execa'

import {type FileServer, type ScriptStep, makeData, md5, startFileServer} from '../fakes/file-server.js'

const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const HAS_RCLONE = spawnSync('rclone', ['version'], {stdio: 'ignore'}).status === 0
const DATA = makeData(3_000_000, 3)
const MD5 = md5(DATA)
const FILE = '/1D_Burgers_Sols_Nu0.01.hdf5'

let root: string
let n = 0
before(async () => {
  assert.ok(existsSync(fileURLToPath(new URL('../../dist/commands/data/fetch.js', import.meta.url))), 'run `npm run build` before the e2e tests')
  root = await mkdtemp(join(tmpdir(), 'ups-fetch-e2e-'))
})
after(async () => {
  await rm(root, {recursive: true, force: true})
})

async function ups(args: string[], env: Record<string, string> = {}) {
  const r = await execa(process.execPath, [BIN, ...args], {reject: false, env: {...env, NO_COLOR: '1'}, cwd: root})
  return {code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr)}
}

async function withServer(script: ScriptStep[], fn: (s: FileServer) => Promise<void>) {
  const server = await startFileServer({files: {[FILE]: DATA}, script})
  try {
    await fn(server)
  } finally {
    await server.close()
  }
}

describe('ups data fetch (HTTP)', () => {
  it('downloads, verifies, prints progress on stderr and JSON on stdout; a rerun skips', async () => {
    await withServer([], async (server) => {
      const to = join(root, `d${n++}`)
      const r = await ups(['data', 'fetch', server.url(FILE), '--to', to, '--checksum', `md5:${MD5}`, '--json'])
      assert.equal(r.code, 0, r.stderr)
      const result = JSON.parse(r.stdout)
      assert.deepEqual(result, {
        source: server.url(FILE),
        path: join(to, '1D_Burgers_Sols_Nu0.01.hdf5'),
        bytes: DATA.length,
        checksum: `md5:${MD5}`,
        verified: true,
        resumed: false,
        attempts: 1,
        skipped: false,
      })
      assert.deepEqual(await readFile(result.path), DATA)
      assert.match(r.stderr, /100\.0%/)
      assert.doesNotMatch(r.stderr, /\r/)

      const again = await ups(['data', 'fetch', server.url(FILE), '--to', to, '--checksum', `md5:${MD5}`])
      assert.equal(again.code, 0)
      assert.match(again.stdout, /Already present and verified/)
      assert.equal(server.requests.length, 1)
    })
  })

  it('resumes after the connection drops mid-file', async () => {
    await withServer([{dropAfter: 1_000_000}], async (server) => {
      const to = join(root, `d${n++}`)
      const r = await ups(['data', 'fetch', server.url(FILE), '--to', to, '--checksum', `md5:${MD5}`, '--json'])
      assert.equal(r.code, 0, r.stderr)
      const result = JSON.parse(r.stdout)
      assert.equal(result.resumed, true)
      assert.equal(result.attempts, 2)
      assert.equal(server.requests[1].headers.range, 'bytes=1000000-')
      assert.match(r.stderr, /Retry 1 of 5 .*closed/)
      assert.match(r.stderr, /resuming at/)
      assert.deepEqual(await readFile(result.path), DATA)
    })
  })

  it('exits 1 on a checksum mismatch, naming expected and actual, with no file under the final name', async () => {
    await withServer([], async (server) => {
      const to = join(root, `d${n++}`)
      const wrong = 'e6d9a4f62baf9a29121a816b919e2770'
      const r = await ups(['data', 'fetch', server.url(FILE), '--to', to, '--checksum', `md5:${wrong}`])
      assert.equal(r.code, 1)
      assert.match(r.stderr, new RegExp(`expected md5:${wrong}, got md5:${MD5}`))
      assert.deepEqual(await readdir(to), [])

      const json = await ups(['data', 'fetch', server.url(FILE), '--to', to, '--checksum', `md5:${wrong}`, '--json'])
      assert.equal(json.code, 1)
      assert.equal(JSON.parse(json.stdout).error.code, 'DATA_FETCH_CHECKSUM_MISMATCH')
    })
  })

  it('exits 3 on 404 after a single request', async () => {
    await withServer([], async (server) => {
      const r = await ups(['data', 'fetch', server.url('/missing.hdf5'), '--to', join(root, `d${n++}`), '--json'])
      assert.equal(r.code, 3)
      assert.equal(JSON.parse(r.stdout).error.code, 'DATA_FETCH_HTTP_404')
      assert.equal(server.requests.length, 1)
    })
  })

  it('retries 503 (honouring Retry-After) and succeeds', async () => {
    const busy = {status: 503, headers: {'retry-after': '0'}}
    await withServer([busy, busy], async (server) => {
      const r = await ups(['data', 'fetch', server.url(FILE), '--to', join(root, `d${n++}`), '--json'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(JSON.parse(r.stdout).attempts, 3)
      assert.equal(server.requests.length, 3)
      assert.match(r.stderr, /Retry 2 of 5 in 0\.0 s: HTTP 503/)
    })
  })

  it('exits 2 on a malformed checksum or source', async () => {
    const bad = await ups(['data', 'fetch', 'http://127.0.0.1:9/a.h5', '--to', root, '--checksum', 'md5:xyz', '--json'])
    assert.equal(bad.code, 2)
    assert.equal(JSON.parse(bad.stdout).error.code, 'DATA_FETCH_BAD_CHECKSUM')
    const src = await ups(['data', 'fetch', 'data/a.h5', '--to', root])
    assert.equal(src.code, 2)
    assert.match(src.stderr, /rclone:REMOTE:path/)
  })
})

describe('ups data fetch (rclone)', () => {
  it('copies from a local rclone remote and verifies the checksum', {skip: HAS_RCLONE ? false : 'rclone is not installed (apt-get install rclone)'}, async () => {
    const dir = join(root, `remote${n++}`)
    const config = join(dir, 'rclone.conf')
    const file = join(dir, 'burgers1d_train_000.h5')
    const to = join(root, `d${n++}`)
    await execa('mkdir', ['-p', dir])
    await writeFile(config, '[local]\ntype = local\n')
    await writeFile(file, DATA)
    const r = await ups(['data', 'fetch', `rclone:local:${file}`, '--to', to, '--checksum', `md5:${MD5}`, '--json'], {RCLONE_CONFIG: config})
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout)
    assert.equal(result.verified, true)
    assert.deepEqual(await readFile(join(to, 'burgers1d_train_000.h5')), DATA)
  })

  it('exits 3 with an install hint when rclone is missing', async () => {
    const r = await ups(['data', 'fetch', 'rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5', '--to', root], {UPS_RCLONE_BIN: join(root, 'no-rclone')})
    assert.equal(r.code, 3)
    assert.match(r.stderr, /apt-get install rclone/)
  })
})
