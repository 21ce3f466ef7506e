import assert from 'node:assert/strict'
import {chmod, mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {makeFakeVast, type FakeVast} from '../fixtures/fake-vast.js'
import {startMockWandb} from '../fixtures/mock-wandb.js'
import {hasStackTrace, runCli, tempDir} from '../helpers.js'
import {OOM_LOG} from '../unit/ops/logs.js'
import {LEADERBOARD, RUN_CONFIG, RUN_ID, launchLine, recordedHistory, writeRecordedRun} from '../unit/ops/run-fixture.js'

/** A working folder with a recorded run, a leaderboard, launch records and a fake vastai on PATH. */
async function workspace(t: import('node:test').TestContext): Promise<{cwd: string; fake: FakeVast; env: Record<string, string>; id: number}> {
  const cwd = await tempDir(t, 'ups-e2e-ops-')
  const fake = makeFakeVast({now: Math.floor(Date.parse('2025-03-01T12:00:00Z') / 1000)})
  t.after(() => fake.cleanup())
  const id = fake.addInstance({id: 31000001, ageSeconds: 7200, label: 'burgers'})
  fake.writeLog(id, OOM_LOG)
  await writeRecordedRun(join(cwd, 'artifacts', 'runs'))
  await mkdir(join(cwd, 'reports'), {recursive: true})
  await writeFile(join(cwd, 'reports', 'leaderboard.csv'), LEADERBOARD)
  await mkdir(join(cwd, 'home'), {recursive: true})
  // Launched ~2 h ago by the fake's clock (the CLI's clock is real, so period checks use month).
  await writeFile(join(cwd, 'home', 'launches.jsonl'), launchLine({instance_id: id, started_at: new Date(Date.now() - 2 * 3_600_000).toISOString()}) + '\n')
  // scp that cannot reach anything, as off-line here.
  await writeFile(join(fake.binDir, 'scp'), '#!/bin/sh\necho "ssh: connect to host ssh2.vast.ai port 20001: Connection refused" >&2\nexit 255\n')
  await chmod(join(fake.binDir, 'scp'), 0o755)
  const env = fake.env({UPS_HOME: join(cwd, 'home')})
  delete env.UPS_VASTAI_BIN
  return {cwd, fake, env, id}
}

test('ups analyze: report + plots, --json, --source wandb, unknown run exits 2', async (t) => {
  const {cwd, env} = await workspace(t)
  const text = await runCli(['analyze', RUN_ID], {cwd, env})
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, new RegExp(`Report: reports/${RUN_ID}_analysis\\.md`))
  assert.match(text.stdout, /operator\s+loss 1 -> 0\.02304 \(97\.7%, excellent\)/)
  const md = await readFile(join(cwd, 'reports', `${RUN_ID}_analysis.md`), 'utf8')
  assert.match(md, /## Recommendations[\s\S]*lower the learning rate/)
  for (const ext of ['svg', 'png']) assert.ok((await stat(join(cwd, 'reports', `${RUN_ID}_analysis_grad_norm.${ext}`))).size > 1000)

  const json = await runCli(['analyze', RUN_ID, '--output', 'out/a.md', '--no-plots', '--json'], {cwd, env})
  assert.equal(json.code, 0, json.stderr)
  const r = JSON.parse(json.stdout)
  assert.equal(r.reportPath, 'out/a.md')
  assert.deepEqual(r.plots, [])
  assert.equal(r.stages[1].loss.nonFinite, 1)
  assert.equal(r.evaluation.champion.champion.run_id, 'run_20250215_000000_0002')
  assert.equal(r.cost.instanceId, 31000001)
  assert.ok((await stat(join(cwd, 'out', 'a.md'))).isFile())

  const mock = await startMockWandb()
  t.after(() => mock.close())
  mock.runs.set(`${mock.entity}/ups-test/${RUN_ID}`, {
    entity: mock.entity, project: 'ups-test', name: RUN_ID, config: RUN_CONFIG, upserts: 1, state: 'finished',
    history: recordedHistory().map((x) => ({...x.metrics, _step: x.step})), offsetErrors: [], summary: {_runtime: 60}, files: {}, uploaded: [], completions: 1,
  })
  const wb = await runCli(['analyze', RUN_ID, '--source', 'wandb', '--no-plots', '--output', 'w.md', '--json'], {cwd, env: {...env, WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}})
  assert.equal(wb.code, 0, wb.stderr)
  assert.equal(JSON.parse(wb.stdout).source, 'wandb')
  assert.equal(JSON.parse(wb.stdout).header.durationSec, 60)

  const missing = await runCli(['analyze', 'run_nope'], {cwd, env})
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /Error: No run "run_nope"/)
  assert.ok(!hasStackTrace(missing.stderr))
  const missingJson = await runCli(['analyze', 'run_nope', '--json'], {cwd, env})
  assert.equal(missingJson.code, 2)
  assert.equal(JSON.parse(missingJson.stdout).error.code, 'RUNDIR_NOT_FOUND')
})

test('ups cost: burn and launches, --json, bad period exits 2', async (t) => {
  const {cwd, env, fake} = await workspace(t)
  fake.addInstance({id: 31000002, ageSeconds: 60, intended_status: 'stopped'})
  const text = await runCli(['cost'], {cwd, env})
  assert.equal(text.code, 0, text.stderr)
  assert.match(text.stdout, /Running instances: 1/)
  assert.match(text.stdout, /Burn rate: \$0\.3679\/h = \$8\.83\/day/)
  assert.match(text.stdout, /runs launched: +1 \(1 succeeded/)

  const json = await runCli(['cost', '--period', 'month', '--json'], {cwd, env})
  assert.equal(json.code, 0, json.stderr)
  const r = JSON.parse(json.stdout)
  assert.equal(r.period, 'month')
  assert.deepEqual(r.running.map((i: {id: number}) => i.id), [31000001])
  assert.ok(Math.abs(r.dailyBurnUsd - 0.3679 * 24) < 1e-9)
  assert.equal(r.launches[0].endBasis, 'running')
  assert.equal(r.launches[0].outcome, 'succeeded')
  assert.ok(r.totals.totalUsd > 0.79 && r.totals.totalUsd < 0.81)

  const bad = await runCli(['cost', '--period', 'year'], {cwd, env})
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /Expected --period=year to be one of/)
  assert.ok(!hasStackTrace(bad.stderr))
})

test('ups incident: OOM classified, instance stopped once, idempotent; unknown instance exits 2', async (t) => {
  const {cwd, env, fake, id} = await workspace(t)
  const json = await runCli(['incident', String(id), '--json'], {cwd, env})
  assert.equal(json.code, 0, json.stderr)
  const r = JSON.parse(json.stdout)
  assert.equal(r.classification.cause, 'oom')
  assert.match(r.classification.action, /batch_size 12 -> 6/)
  assert.equal(r.runId, RUN_ID)
  assert.equal(r.state.checkpoints.status, 'failed')
  assert.match(r.state.checkpoints.reason, /Connection refused/)
  assert.equal(r.state.stop.status, 'stopped')
  assert.equal(await readFile(join(cwd, r.files.log), 'utf8'), OOM_LOG)
  assert.match(await readFile(join(cwd, r.files.report), 'utf8'), /# Incident: instance 31000001[\s\S]*Out of memory/)

  const again = await runCli(['incident', String(id)], {cwd, env})
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, /\(updated\)/)
  assert.match(again.stdout, /Root cause: Out of memory/)
  assert.match(again.stdout, /stopped by ups incident/)
  assert.equal((fake.read().calls ?? []).filter((c) => c.argv[0] === 'stop').length, 1)

  const gone = await runCli(['incident', '999', '--json'], {cwd, env})
  assert.equal(gone.code, 2)
  assert.equal(JSON.parse(gone.stdout).error.code, 'INCIDENT_NO_INSTANCE')
})

test('ups cleanup: dry run lists, --json, --yes acts, bad duration exits 2', async (t) => {
  const {cwd, env, fake} = await workspace(t)
  fake.addInstance({id: 31000009, ageSeconds: 30 * 86400, intended_status: 'stopped'})
  const dry = await runCli(['cleanup'], {cwd, env})
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stdout, /Dry run: nothing changed/)
  assert.match(dry.stdout, /destroy\s+31000009/)
  assert.match(dry.stdout, /keep\s+31000001 \(burgers\)\s+running: never touched/)

  const json = await runCli(['cleanup', '--archive-runs-older-than', '0d', '--json'], {cwd, env})
  assert.equal(json.code, 0, json.stderr)
  const plan = JSON.parse(json.stdout)
  assert.equal(plan.dryRun, true)
  // The run's instance (from the launch records) still runs: the run is kept.
  assert.deepEqual(plan.runs.map((x: {runId: string; action: string; reason: string}) => [x.runId, x.action, x.reason]), [[RUN_ID, 'skip', 'its instance 31000001 is running']])
  fake.update((s) => {
    s.instances[0].intended_status = 'stopped'
  })

  const yes = await runCli(['cleanup', '--archive-runs-older-than', '0d', '--yes', '--json'], {cwd, env})
  assert.equal(yes.code, 0, yes.stderr)
  const done = JSON.parse(yes.stdout)
  assert.deepEqual([done.summary.destroy, done.summary.archive], [1, 1])
  // Launched 2 h ago per its launch record: too recent to destroy.
  assert.equal(done.instances.find((i: {id: number}) => i.id === 31000001).action, 'skip')
  assert.ok((await stat(join(cwd, 'archive', 'runs', RUN_ID, 'metadata.json'))).isFile())
  const destroyed = (fake.read().calls ?? []).filter((c) => c.argv[0] === 'destroy').map((c) => c.argv[2])
  assert.deepEqual(destroyed, ['31000009'])

  const bad = await runCli(['cleanup', '--cache-older-than', 'soon'], {cwd, env})
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /--cache-older-than "soon" is not a duration/)
})
