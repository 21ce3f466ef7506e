/**
 * Locks and kills with the real CLI: a kill -9 between an epoch's checkpoint and its history line
 * loses nothing (resume restores the line from the checkpoint, once); the killed process's lock
 * and temp files are reclaimed; and a second `ups resume` of a running run is refused without
 * training or writing history.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdir, readdir, readFile, stat, utimes, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {it} from 'node:test'

import {CLI, hasStackTrace, runCli, tempDir} from '../helpers.js'
import {tinyConfig} from './train-fixtures.js'

const RUN_ID = 'run_20260101_000000_abcd'
const exists = (p: string) => stat(p).then(() => true, () => false)

/** `stage:epoch` of every history.jsonl record, in order. */
async function historyKeys(run: string): Promise<string[]> {
  const text = await readFile(join(run, 'history.jsonl'), 'utf8')
  return text.split('\n').filter(Boolean).map((l) => {
    const m = JSON.parse(l).metrics as Record<string, unknown>
    const stage = Object.keys(m).find((k) => k.endsWith('/loss') && !k.endsWith('val_loss'))!.slice(0, -'/loss'.length)
    return `${stage}:${m.epoch}`
  })
}

it('kill -9 between checkpoint and history, then two resumes at once: one is refused, the other reclaims the lock, cleans temp files and restores the history line once', {timeout: 600_000}, async (t) => {
  const cwd = await tempDir(t, 'ups-e2e-locks-')
  await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
  const run = join(cwd, 'artifacts', 'runs', RUN_ID)

  // A pipeline run that stops in training, so `ups resume` has something to continue.
  const first = await runCli(['run', '--train-config', 'tiny.yaml', '--run-id', RUN_ID, '--skip-dry-run', '--skip-data-check', '--skip-small-eval', '--skip-full-eval'], {cwd, env: {UPS_TEST_FAULT: 'crash:operator:1'}})
  assert.equal(first.code, 1, first.stderr)
  assert.match(first.stdout, /Training pipeline failed: train: Simulated crash after operator epoch 1/)

  // SIGKILL right after operator epoch 2's checkpoint, before its history line.
  const killed = await runCli(['train', 'tiny.yaml', '--backend', 'wasm', '--run-dir', run], {cwd, env: {UPS_TEST_FAULT: 'kill:operator:2:after-last'}})
  assert.equal(killed.code, -1, killed.stderr)
  assert.deepEqual((await historyKeys(run)).filter((k) => k.startsWith('operator')), ['operator:1'])
  // The killed process's lock stays behind (read leniently: the assertions on it come last).
  const deadPid = await readFile(join(run, '.ups.lock'), 'utf8').then((text) => JSON.parse(text).pid as number, () => null)
  // What a kill in the middle of an atomic write leaves behind (by another dead writer).
  const writer = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  await new Promise((r) => writer.on('exit', r))
  const leftovers = [join(run, `.summary.json.${writer.pid}.0a1b2c3d.tmp`), join(run, 'checkpoints', `.metadata.json.${writer.pid}.deadbeef.tmp`)]
  for (const p of leftovers) await writeFile(p, '{"torn')

  // Resume A takes the lock; it is frozen (SIGSTOP) while resume B tries.
  const a = spawn(process.execPath, [CLI, 'resume', RUN_ID], {cwd, stdio: ['ignore', 'pipe', 'pipe']})
  t.after(() => a.kill('SIGKILL'))
  let aOut = ''
  a.stdout.on('data', (d) => (aOut += d))
  const aExit = new Promise<number | null>((r) => a.on('close', (code) => r(code)))
  await new Promise<void>((resolve, reject) => {
    a.stderr.on('data', (d) => {
      aOut += d
      if (/Reclaimed the lock/.test(aOut)) resolve()
    })
    a.on('exit', () => reject(new Error(`resume A ended before taking the lock: ${aOut}`)))
  })
  a.kill('SIGSTOP')
  if (process.env.UPS_TEST_DEBUG) process.stderr.write(`--- A stopped (pid ${a.pid}); lock: ${await readFile(join(run, '.ups.lock'), 'utf8').catch((e) => String(e))}\n${aOut}\n`)
  const historyBefore = await readFile(join(run, 'history.jsonl'), 'utf8')
  const b = await runCli(['resume', RUN_ID], {cwd})
  a.kill('SIGCONT')
  if (process.env.UPS_TEST_DEBUG) process.stderr.write(`--- B ${b.code}\n${b.stdout}\n${b.stderr}\n`)
  assert.equal(b.code, 1, b.stdout + b.stderr)
  assert.match(b.stderr, new RegExp(`Error: The run directory .*${RUN_ID} is in use by pid ${a.pid} on .* \\(\`ups resume ${RUN_ID}\`, since .*\\)\\. Lock file: .*\\.ups\\.lock\\.`))
  assert.match(b.stderr, /Hint: Wait for that process to finish/)
  assert.ok(!hasStackTrace(b.stderr))
  assert.doesNotMatch(b.stderr, /Training started|epoch/)
  assert.equal(await readFile(join(run, 'history.jsonl'), 'utf8'), historyBefore, 'the refused resume wrote no history')

  const aCode = await aExit
  if (process.env.UPS_TEST_DEBUG) process.stderr.write(`--- A ${aCode}\n${aOut}\n`)
  assert.equal(aCode, 0, aOut)
  assert.ok(deadPid, 'the killed process left its lock')
  assert.match(aOut, new RegExp(`Reclaimed the lock of .*${RUN_ID} from pid ${deadPid} .*: pid ${deadPid} is no longer running`))
  for (const p of leftovers) {
    assert.match(aOut, new RegExp(`Removed a temp file left by a killed writer: ${p.replace(/[.]/g, '\\.')}`))
    assert.ok(!(await exists(p)), p)
  }
  assert.match(aOut, /Restored the history record of operator epoch 2 from its checkpoint/)
  assert.match(aOut, /Training pipeline completed successfully/)
  const keys = await historyKeys(run)
  assert.deepEqual(keys.filter((k) => k.startsWith('operator')), ['operator:1', 'operator:2', 'operator:3', 'operator:4'])
  assert.deepEqual(keys, [...new Set(keys)], `no stage/epoch twice: ${keys.join(', ')}`)
  assert.ok(!(await exists(join(run, '.ups.lock'))), 'released at the end')
})

it('ups train and ups eval into a run directory another live process holds: exit 1 naming the holder, nothing written', async (t) => {
  const cwd = await tempDir(t, 'ups-e2e-locks-')
  await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
  const run = join(cwd, 'run')
  await mkdir(join(run, 'checkpoints'), {recursive: true})
  await writeFile(join(run, 'metadata.json'), JSON.stringify({run_id: 'run', created_at: '2026-01-01T00:00:00.000Z', status: 'running'}))
  // This test process is the live holder.
  await writeFile(join(run, '.ups.lock'), JSON.stringify({pid: process.pid, hostname: hostname(), started_at: '2026-01-01T00:00:00.000Z', command: 'ups resume run'}))
  const before = (await readdir(run)).filter((n) => n !== 'logs')
  for (const args of [['train', 'tiny.yaml', '--backend', 'cpu', '--run-dir', run], ['eval', 'tiny.yaml', '--checkpoints', join(run, 'checkpoints')]]) {
    const r = await runCli(args, {cwd})
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`)
    assert.match(r.stderr, new RegExp(`Error: The run directory ${run} is in use by pid ${process.pid} on .* \\(\`ups resume run\`, since 2026-01-01T00:00:00.000Z\\)`))
    assert.ok(!hasStackTrace(r.stderr))
    // (`ups train` opens its log file logs/ups.jsonl first; nothing else is written.)
    assert.deepEqual((await readdir(run)).filter((n) => n !== 'logs'), before, `${args[0]} wrote nothing into the run`)
  }
  const j = await runCli(['eval', 'tiny.yaml', '--checkpoints', join(run, 'checkpoints'), '--json'], {cwd})
  assert.equal(j.code, 1)
  assert.equal(JSON.parse(j.stdout).error.code, 'RUNDIR_LOCKED')
})

it('ups train removes temp files of dead writers from a latent cache folder outside the run directory; keeps live writers\' and fresh ones', async (t) => {
  const cwd = await tempDir(t, 'ups-e2e-locks-')
  await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data').replace('training:\n', 'training:\n  latent_cache_dir: shared_cache\n'))
  const cache = join(cwd, 'shared_cache')
  await mkdir(join(cache, 'burgers1d_train-old'), {recursive: true})
  const writer = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  await new Promise((r) => writer.on('exit', r))
  const dead = join(cache, 'burgers1d_train-old', `.latents.bin.${writer.pid}.0a1b2c3d.tmp`)
  const live = join(cache, `.meta.json.${process.pid}.0a1b2c3d.tmp`)
  // A dead pid here may be a live writer on another machine sharing the folder: kept while fresh.
  const fresh = join(cache, `.meta.json.${writer.pid}.1a2b3c4d.tmp`)
  for (const p of [dead, live, fresh]) await writeFile(p, 'torn')
  const hourAgo = new Date(Date.now() - 3_600_000)
  for (const p of [dead, live]) await utimes(p, hourAgo, hourAgo)

  const r = await runCli(['train', 'tiny.yaml', '--backend', 'wasm', '--run-dir', join(cwd, 'run')], {cwd})
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout + r.stderr, new RegExp(`Removed a temp file left by a killed writer: ${dead.replace(/[.]/g, '\\.')}`))
  assert.ok(!(await exists(dead)), 'the dead writer\'s temp is gone')
  assert.ok(await exists(live), 'a live writer\'s temp is kept')
  assert.ok(await exists(fresh), 'a fresh temp is kept')
})
