import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdir, mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {execaRunner} from '../../../src/cli/fetch-deps.js'
import {createNodeHttpGet} from '../../../src/data/fetch-http.js'
import {type CommandRunner, type FetchDeps, type FetchEvent, fetchData} from '../../../src/data/fetch.js'
import {UserError} from '../../../src/util/errors.js'
import {makeData, md5} from '../../fakes/file-server.js'

const HAS_RCLONE = spawnSync('rclone', ['version'], {stdio: 'ignore'}).status === 0
const SKIP = HAS_RCLONE ? false : 'rclone is not installed (apt-get install rclone); skipping the rclone copy tests'
if (!HAS_RCLONE) console.log(`# ${SKIP}`)

const DATA = makeData(2_500_000, 11)

let root: string
let config: string
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ups-fetch-rclone-'))
  await mkdir(join(root, 'remote', 'burgers1d'), {recursive: true})
  await writeFile(join(root, 'remote', 'burgers1d', 'burgers1d_train_000.h5'), DATA)
  await writeFile(join(root, 'remote', 'burgers1d', 'burgers1d_val_000.h5'), DATA.subarray(0, 1000))
  config = join(root, 'rclone.conf')
  await writeFile(config, '[local]\ntype = local\n')
})
after(async () => {
  await rm(root, {recursive: true, force: true})
})

function deps(runner: CommandRunner = execaRunner, rcloneBin?: string): FetchDeps {
  let t = 0
  return {
    http: createNodeHttpGet(),
    runner,
    sleep: async () => {},
    now: () => (t += 10),
    random: () => 0.5,
    env: {PATH: process.env.PATH, HOME: root, RCLONE_CONFIG: config},
    rcloneBin,
  }
}

function rejectsWith(promise: Promise<unknown>, check: (e: UserError) => void) {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof UserError, String(error))
    check(error)
    return true
  })
}

describe('fetchData from an rclone remote', () => {
  it('copies one file with rclone copyto, verifies it, and skips it on a rerun', {skip: SKIP}, async () => {
    const to = join(root, 'out1')
    const source = `rclone:local:${join(root, 'remote', 'burgers1d', 'burgers1d_train_000.h5')}`
    const events: FetchEvent[] = []
    const result = await fetchData(source, {to, checksum: `md5:${md5(DATA)}`, onEvent: (e) => events.push(e)}, deps())
    assert.equal(result.path, join(to, 'burgers1d_train_000.h5'))
    assert.deepEqual(await readFile(result.path), DATA)
    assert.deepEqual({verified: result.verified, checksum: result.checksum, bytes: result.bytes, skipped: result.skipped, attempts: result.attempts}, {
      verified: true,
      checksum: `md5:${md5(DATA)}`,
      bytes: DATA.length,
      skipped: false,
      attempts: 1,
    })
    assert.deepEqual(await readdir(to), ['burgers1d_train_000.h5'])
    assert.ok(events.some((e) => e.type === 'start' && e.total === DATA.length))

    const again = await fetchData(source, {to, checksum: `md5:${md5(DATA)}`}, deps())
    assert.equal(again.skipped, true)
  })

  it('rejects a wrong checksum with exit 1 and leaves nothing under the final name', {skip: SKIP}, async () => {
    const to = join(root, 'out2')
    const source = `rclone:local:${join(root, 'remote', 'burgers1d', 'burgers1d_train_000.h5')}`
    await rejectsWith(fetchData(source, {to, checksum: 'md5:e6d9a4f62baf9a29121a816b919e2770'}, deps()), (e) => {
      assert.equal(e.exitCode, 1)
      assert.match(e.message, new RegExp(`expected md5:e6d9a4f62baf9a29121a816b919e2770, got md5:${md5(DATA)}`))
    })
    assert.deepEqual(await readdir(to), [])
  })

  it('copies a folder with rclone copy', {skip: SKIP}, async () => {
    const to = join(root, 'out3')
    const result = await fetchData(`rclone:local:${join(root, 'remote', 'burgers1d')}`, {to}, deps())
    assert.equal(result.path, to)
    assert.deepEqual((await readdir(to)).sort(), ['burgers1d_train_000.h5', 'burgers1d_val_000.h5'])
    assert.equal(result.bytes, DATA.length + 1000)
  })

  it('says which path is missing on the remote (exit 3)', {skip: SKIP}, async () => {
    await rejectsWith(fetchData(`rclone:local:${join(root, 'remote', 'nope.h5')}`, {to: join(root, 'out4')}, deps()), (e) => {
      assert.equal(e.exitCode, 3)
      assert.equal(e.code, 'DATA_FETCH_NOT_FOUND')
      assert.match(e.hint ?? '', /rclone lsf local:/)
    })
  })

  it('says when the remote is not configured (exit 3)', {skip: SKIP}, async () => {
    await rejectsWith(fetchData('rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5', {to: join(root, 'out5')}, deps()), (e) => {
      assert.equal(e.exitCode, 3)
      assert.equal(e.code, 'DATA_FETCH_RCLONE_REMOTE')
      assert.match(e.message, /"B2"/)
    })
  })

  it('tells how to install rclone when it is missing (exit 3)', async () => {
    await rejectsWith(fetchData('rclone:B2:pdebench/full/burgers1d/burgers1d_train_000.h5', {to: join(root, 'out6')}, deps(execaRunner, join(root, 'no-such-rclone'))), (e) => {
      assert.equal(e.exitCode, 3)
      assert.equal(e.code, 'DATA_FETCH_RCLONE_MISSING')
      assert.match(e.hint ?? '', /apt-get install rclone/)
    })
  })

  it('maps rclone retries and failures from its output', async () => {
    const calls: string[][] = []
    const runner: CommandRunner = {
      async run(_cmd, args, options) {
        calls.push(args)
        if (args[0] === 'lsjson') return {exitCode: 0, stdout: JSON.stringify({Name: 'a.h5', Size: 10, IsDir: false}), stderr: ''}
        options.onStderrLine?.('{"level":"error","msg":"Attempt 1/6 failed with 1 errors and: connection reset"}')
        options.onStderrLine?.('{"level":"error","msg":"Attempt 2/6 failed with 1 errors and: connection reset"}')
        return {exitCode: 5, stdout: '', stderr: '{"level":"error","msg":"Failed to copy: connection reset by peer"}\n'}
      },
    }
    await rejectsWith(fetchData('rclone:B2:data/a.h5', {to: join(root, 'out7')}, deps(runner)), (e) => {
      assert.equal(e.code, 'DATA_FETCH_RCLONE_FAILED')
      assert.match(e.message, /exit 5.*connection reset by peer/)
    })
    assert.deepEqual(calls[1].slice(0, 2), ['copyto', 'B2:data/a.h5'])
    assert.ok(calls[1].includes('--retries') && calls[1][calls[1].indexOf('--retries') + 1] === '6')
  })
})
