import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {UserError} from '../../../src/util/errors.js'
import {ONSTART_LIMIT, type OnstartPlan, RESTORE_MARKER, buildOnstartScript, dataStepArgs, shQuote} from '../../../src/vast/index.js'

const COMMIT = '0123456789abcdef0123456789abcdef01234567'
const plan = (over: Partial<OnstartPlan> = {}): OnstartPlan => ({
  source: {gitUrl: 'https://github.com/example/ups.git', ref: COMMIT},
  trainConfig: 'configs/train_burgers_32dim.yaml',
  runArgs: ['--stages', 'operator'],
  data: ['generate:burgers --samples 64', 'url:https://example.org/burgers.h5', 'rclone:r2:bucket/pdebench'],
  autoShutdown: true,
  runId: 'run_20260101_000000_abcd',
  ...over,
})

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0

function shellcheck(script: string): void {
  if (!hasShellcheck) return
  const r = spawnSync('shellcheck', ['-s', 'bash', '-'], {input: script, encoding: 'utf8'})
  assert.equal(r.status, 0, r.stdout + r.stderr)
}

function bashN(script: string): void {
  const r = spawnSync('bash', ['-n'], {input: script, encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
}

describe('onstart script', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ups-onstart-'))
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  /** Runs the script with stub node/git/npm/vastai on PATH; returns the calls they logged. */
  function runWithStubs(script: string, env: Record<string, string> = {}) {
    const root = mkdtempSync(join(dir, 'run-'))
    const bin = join(root, 'bin')
    mkdirSync(bin)
    const calls = join(root, 'calls.log')
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`)
      chmodSync(join(bin, name), 0o755)
    }
    stub('node', `if [ "$1" = -v ]; then echo v20.11.1; exit 0; fi\nshift\necho "ups $*" >> "$CALLS"\nif [ "$1" = run ]; then echo "Training started"; exit "\${RUN_EXIT:-0}"; fi`)
    stub('git', `echo "git $*" >> "$CALLS"\n[ "$1" = rev-parse ] && echo ${COMMIT}\nexit 0`)
    stub('npm', 'echo "npm $*" >> "$CALLS"')
    stub('vastai', 'echo "vastai $* key=${VAST_API_KEY:-}" >> "$CALLS"')
    stub('curl', 'echo "curl $*" >> "$CALLS"')
    stub('apt-get', 'echo "apt-get $*" >> "$CALLS"')
    // A host without the Vulkan loader: the script installs it (for the webgpu backend).
    stub('ldconfig', 'exit 0')
    // sleep never really sleeps; with RESTORE_ON_SLEEP it creates that file (the restore arriving mid-wait).
    stub('sleep', 'echo "sleep $*" >> "$CALLS"\nif [ -n "${RESTORE_ON_SLEEP:-}" ]; then mkdir -p "$(dirname "$RESTORE_ON_SLEEP")" && touch "$RESTORE_ON_SLEEP"; fi')
    const r = spawnSync('bash', ['-c', script], {
      encoding: 'utf8',
      env: {PATH: `${bin}:/usr/bin:/bin`, CALLS: calls, TMPDIR: root, CONTAINER_ID: '31000042', CONTAINER_API_KEY: 'inst_scoped_key', ...env},
    })
    return {status: r.status, out: r.stdout + r.stderr, calls: readFileSync(calls, 'utf8').trim().split('\n'), root}
  }

  test('passes bash -n and shellcheck, fits the limit, names no secret', () => {
    const r = buildOnstartScript(plan({secretValues: ['wandb_live_secret_123']}))
    assert.equal(r.compressed, false)
    assert.ok(r.length <= ONSTART_LIMIT)
    bashN(r.script)
    shellcheck(r.script)
    assert.ok(!r.script.includes('wandb_live_secret_123'))
    assert.match(r.script, /vastai stop instance "\$id"/)
    assert.doesNotMatch(r.script, /vastai destroy/)
  })

  test('runs the steps in order and, on failure, stops (never destroys) the instance from the EXIT trap', () => {
    const {script} = buildOnstartScript(plan({workdir: join(dir, 'app1'), logFile: join(dir, 'run1.log'), onExit: [['wandb', 'sync', 'artifacts/runs/x']]}))
    const r = runWithStubs(script, {RUN_EXIT: '3'})
    assert.equal(r.status, 3, r.out)
    const steps = r.calls.map((c) => c.split(' ').slice(0, 3).join(' '))
    assert.deepEqual(steps, [
      'git init -q',
      'git remote remove',
      'git remote add',
      'git fetch -q',
      'git checkout -q',
      'git rev-parse HEAD',
      'npm ci --no-audit',
      'npm run build',
      'apt-get update -qq',
      'apt-get install -y',
      'ups doctor',
      'ups data generate',
      'ups data fetch',
      'ups data fetch',
      'ups run --train-config',
      'ups wandb sync',
      'vastai stop instance',
    ])
    assert.ok(r.calls.includes('ups data fetch rclone:r2:bucket/pdebench'))
    assert.ok(r.calls.includes('ups run --train-config configs/train_burgers_32dim.yaml --stages operator'))
    assert.ok(r.calls.includes('vastai stop instance 31000042 key=inst_scoped_key'))
    assert.ok(!r.calls.some((c) => /destroy/.test(c)))
    assert.match(readFileSync(join(dir, 'run1.log'), 'utf8'), /Training started/)
    assert.match(r.out, /onstart finished with exit code 3/)
  })

  test('without auto-shutdown nothing is stopped; the id falls back to VAST_CONTAINERLABEL', () => {
    const off = runWithStubs(buildOnstartScript(plan({autoShutdown: false, workdir: join(dir, 'app2'), logFile: join(dir, 'run2.log')})).script)
    assert.equal(off.status, 0, off.out)
    assert.ok(!off.calls.some((c) => c.startsWith('vastai')))
    const label = runWithStubs(buildOnstartScript(plan({workdir: join(dir, 'app3'), logFile: join(dir, 'run3.log')})).script, {CONTAINER_ID: '', VAST_CONTAINERLABEL: 'C.31000077'})
    assert.ok(label.calls.some((c) => c.startsWith('vastai stop instance 31000077')))
  })

  test('a long payload is gzip+base64 packed under the limit and runs the same steps', () => {
    const runArgs = Array.from({length: 120}, (_, i) => `--set=training.schedule.step_${i}.lr=0.000${i % 10}`)
    const r = buildOnstartScript(plan({runArgs, workdir: join(dir, 'app4'), logFile: join(dir, 'run4.log')}))
    assert.ok(r.plain.length > ONSTART_LIMIT)
    assert.equal(r.compressed, true)
    assert.ok(r.script.length <= ONSTART_LIMIT, `${r.script.length}`)
    bashN(r.script)
    shellcheck(r.script)
    const run = runWithStubs(r.script)
    assert.equal(run.status, 0, run.out)
    const runCall = run.calls.find((c) => c.startsWith('ups run'))!
    assert.ok(runCall.endsWith('--set=training.schedule.step_119.lr=0.0009'))
    assert.ok(run.calls.some((c) => c.startsWith('vastai stop instance 31000042')))
  })

  describe('restoreWait (ups recover)', () => {
    const RUN = 'run_20260101_000000_abcd'
    const resume = (n: string, over: Partial<OnstartPlan> = {}) =>
      plan({resumeRunId: RUN, restoreWait: true, workdir: join(dir, n), logFile: join(dir, `${n}.log`), ...over})

    test('default plans have no wait step; with the option it passes bash -n and shellcheck and fits the limit', () => {
      assert.doesNotMatch(buildOnstartScript(plan()).plain, /restore/)
      assert.doesNotMatch(buildOnstartScript(plan({resumeRunId: RUN})).plain, /restore/)
      const r = buildOnstartScript(resume('rw0', {secretValues: ['wandb_live_secret_123']}))
      assert.ok(r.script.length <= ONSTART_LIMIT, `${r.script.length}`)
      bashN(r.plain)
      shellcheck(r.plain)
      bashN(r.script)
      shellcheck(r.script)
      assert.ok(r.plain.includes(`/artifacts/runs/${RUN}/${RESTORE_MARKER}`))
      assert.ok(r.plain.includes('UPS_RESTORE_TIMEOUT_S:-1800'))
      assert.ok(r.plain.indexOf(RESTORE_MARKER) < r.plain.lastIndexOf(`ups resume ${RUN}`))
      assert.match(buildOnstartScript(resume('rw0', {restoreWait: {timeoutS: 60}})).plain, /UPS_RESTORE_TIMEOUT_S:-60\b/)
      assert.throws(() => buildOnstartScript(plan({restoreWait: true})), (e: UserError) => e.code === 'VAST_ONSTART_INVALID')
    })

    test('waits for the marker, then resumes', () => {
      const app = join(dir, 'rw1')
      const marker = join(app, 'artifacts/runs', RUN, RESTORE_MARKER)
      const r = runWithStubs(buildOnstartScript(resume('rw1')).script, {RESTORE_ON_SLEEP: marker})
      assert.equal(r.status, 0, r.out)
      const steps = r.calls.map((c) => c.split(' ').slice(0, 2).join(' '))
      // One poll: the marker appeared during the first sleep, and the resume came after it.
      assert.deepEqual(steps.slice(steps.indexOf('ups data') - 1, steps.indexOf('ups resume') + 1), ['ups doctor', 'ups data', 'ups data', 'ups data', 'sleep 10', 'ups resume'])
      assert.equal(steps.filter((s) => s === 'sleep 10').length, 1)
      assert.ok(r.calls.includes(`ups resume ${RUN} --stages operator`), r.calls.join('\n'))
      assert.match(r.out, /checkpoints restored after 10 s/)
    })

    test('times out cleanly without the marker and resumes anyway', () => {
      const r = runWithStubs(buildOnstartScript(resume('rw2')).script, {UPS_RESTORE_TIMEOUT_S: '30'})
      assert.equal(r.status, 0, r.out)
      assert.equal(r.calls.filter((c) => c === 'sleep 10').length, 3)
      assert.match(r.out, /waiting up to 30 s for restored checkpoints/)
      assert.match(r.out, /no restored checkpoints after 30 s; resuming without them/)
      assert.ok(r.calls.indexOf(`ups resume ${RUN} --stages operator`) > r.calls.lastIndexOf('sleep 10'))
      assert.ok(r.calls.some((c) => c.startsWith('vastai stop instance 31000042')))
    })

    test('packed (over the limit) it still waits for the marker', () => {
      const runArgs = Array.from({length: 120}, (_, i) => `--set=training.schedule.step_${i}.lr=0.000${i % 10}`)
      const b = buildOnstartScript(resume('rw3', {runArgs}))
      assert.equal(b.compressed, true)
      const r = runWithStubs(b.script, {UPS_RESTORE_TIMEOUT_S: '20', UPS_RESTORE_POLL_S: '5'})
      assert.equal(r.status, 0, r.out)
      assert.equal(r.calls.filter((c) => c === 'sleep 5').length, 4)
      assert.match(r.out, /no restored checkpoints after 20 s/)
    })
  })

  test('an incompressible payload over the limit is refused', () => {
    const runArgs = [randomBytes(6000).toString('base64')]
    assert.throws(() => buildOnstartScript(plan({runArgs})), (e: UserError) => e.code === 'VAST_ONSTART_TOO_LONG' && e.exitCode === 2)
  })

  test('secrets are refused: known values, KEY=... arguments, credentials in the git URL', () => {
    assert.throws(() => buildOnstartScript(plan({runArgs: ['--note', 'tok_abcdef123'], secretValues: ['tok_abcdef123']})), (e: UserError) => e.code === 'VAST_ONSTART_SECRET')
    assert.throws(() => buildOnstartScript(plan({runArgs: ['WANDB_API_KEY=abc']})), (e: UserError) => e.code === 'VAST_ONSTART_INVALID')
    assert.throws(
      () => buildOnstartScript(plan({source: {gitUrl: 'https://user:ghp_token@github.com/x/y.git', ref: 'main'}})),
      (e: UserError) => e.code === 'VAST_ONSTART_INVALID' && !e.message.includes('ghp_token'),
    )
    assert.throws(() => buildOnstartScript(plan({source: {gitUrl: 'u', ref: '--upload-pack=x'}})), (e: UserError) => e.code === 'VAST_ONSTART_INVALID')
  })

  test('data specs map to ups data commands; quoting survives odd arguments', () => {
    assert.deepEqual(dataStepArgs('generate:burgers --samples 64'), ['data', 'generate', 'burgers', '--samples', '64'])
    assert.deepEqual(dataStepArgs('url:https://h/x.h5'), ['data', 'fetch', 'https://h/x.h5'])
    assert.deepEqual(dataStepArgs('rclone:r2:b/p'), ['data', 'fetch', 'rclone:r2:b/p'])
    assert.throws(() => dataStepArgs('ftp://x'), (e: UserError) => e.code === 'VAST_ONSTART_INVALID')
    assert.equal(shQuote("it's $HOME"), `'it'\\''s $HOME'`)
    const {script} = buildOnstartScript(plan({runArgs: ['--note', "it's $(reboot)"], workdir: join(dir, 'app5'), logFile: join(dir, 'run5.log')}))
    const r = runWithStubs(script)
    assert.ok(r.calls.some((c) => c.endsWith("--note it's $(reboot)")), r.calls.join('\n'))
  })
})
