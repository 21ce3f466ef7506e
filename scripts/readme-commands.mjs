#!/usr/bin/env node
// Regenerates the README's command reference from the commands' own --help text, so the two
// can never disagree. `--check` exits 1 when the README is out of date (the test suite runs it).
import {Config, Help} from '@oclif/core'
import {readFileSync, renameSync, writeFileSync} from 'node:fs'

const START = '<!-- commands -->'
const STOP = '<!-- commandsstop -->'

const config = await Config.load({root: process.cwd()})
const help = new Help(config, {stripAnsi: true, maxWidth: 100})
const commands = config.commands.filter((c) => !c.hidden && c.id !== 'help').sort((a, b) => a.id.localeCompare(b.id))

const name = (c) => c.id.replaceAll(':', ' ')
const sections = [commands.map((c) => `- [\`ups ${name(c)}\`](#ups-${name(c).replaceAll(' ', '-')}): ${c.summary ?? ''}`).join('\n')]
for (const command of commands) {
  const text = help.formatCommand(command).replace(/\x1b\[[0-9;]*m/g, '').trimEnd()
  sections.push(`### ups ${name(command)}\n\n\`\`\`\n${text}\n\`\`\``)
}
const reference = `${START}\n${sections.join('\n\n')}\n${STOP}`

// The validate check ids, from the checks themselves.
const {CHECKS} = await import(new URL('../dist/config/checks.js', import.meta.url).href)
const checkRows = [
  ['schema.valid', 'Schema', 'config matches the schema (types, required keys)'],
  ['schema.known_keys', 'Schema', 'no unknown keys (warning, with a "did you mean")'],
  ...CHECKS.map((c) => [c.id, c.group, c.title]),
]
const checks = `<!-- checks -->\n| id | group | checks that |\n|---|---|---|\n${checkRows.map(([id, group, title]) => `| \`${id}\` | ${group} | ${title.replaceAll('|', '\\|')} |`).join('\n')}\n<!-- checksstop -->`

function replaceBetween(text, start, stop, block) {
  const a = text.indexOf(start)
  const b = text.indexOf(stop)
  if (a < 0 || b < 0) {
    console.error(`README.md has no ${start} ... ${stop} markers`)
    process.exit(1)
  }
  return text.slice(0, a) + block + text.slice(b + stop.length)
}

const readme = readFileSync('README.md', 'utf8')
const updated = replaceBetween(replaceBetween(readme, START, STOP, reference), '<!-- checks -->', '<!-- checksstop -->', checks)
if (process.argv.includes('--check')) {
  if (updated !== readme) {
    console.error('README.md command reference is out of date: run `npm run readme`.')
    process.exit(1)
  }
  process.exit(0)
}
writeFileSync('README.md.tmp', updated)
renameSync('README.md.tmp', 'README.md')
console.error(`README.md: ${commands.length} commands`)
