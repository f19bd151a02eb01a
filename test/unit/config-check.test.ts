import { strict as assert } from 'node:assert';
import { onlyTopologySettingsChanged } from '../../src/postgres/config-check.js';

const accepted = [
  "max_connections = '100'",
  `synchronous_standby_names = 'ANY 1 ("pg-2","pg-3","pg-1")'`,
  "pgim.config_sha256 = 'aaa'",
  "primary_conninfo = 'host=10.0.0.1 port=5432 application_name=pg-3'",
  "primary_slot_name = '_cnpg_pg_3'",
  "recovery_target_timeline = 'latest'",
].join('\n');

const withLines = (replace: Record<string, string | undefined>): string =>
  accepted
    .split('\n')
    .map((line) => {
      const name = line.split(' = ')[0] ?? '';
      return name in replace ? replace[name] : line;
    })
    .filter((line): line is string => line !== undefined)
    .join('\n');

describe('the staged postgres -C check is skipped only for a change of primary', () => {
  it('a new primary (conninfo, synchronous order, hashes) needs no staged check', () => {
    const rendered = withLines({
      primary_conninfo: "primary_conninfo = 'host=10.0.0.2 port=5432 application_name=pg-3'",
      synchronous_standby_names: `synchronous_standby_names = 'ANY 1 ("pg-1","pg-3","pg-2")'`,
      'pgim.config_sha256': "pgim.config_sha256 = 'bbb'",
    });
    assert.equal(onlyTopologySettingsChanged(accepted, rendered), true);
  });

  it('any other setting changed, added or removed still gets the staged check', () => {
    assert.equal(onlyTopologySettingsChanged(accepted, withLines({ max_connections: "max_connections = '200'" })), false);
    assert.equal(onlyTopologySettingsChanged(accepted, `${accepted}\nwork_mem = '8MB'`), false);
    assert.equal(onlyTopologySettingsChanged(accepted, withLines({ recovery_target_timeline: undefined })), false);
  });

  it('names compare case-insensitively, as PostgreSQL reads them; comments and blank lines do not count', () => {
    assert.equal(onlyTopologySettingsChanged(accepted, `# rendered by pgim\n\n${accepted.replace('max_connections', 'MAX_CONNECTIONS')}`), true);
  });

  it('a line that is not `name = value` (an include, a typo) is never assumed harmless', () => {
    assert.equal(onlyTopologySettingsChanged(accepted, `${accepted}\ninclude 'other.conf'`), false);
    assert.equal(onlyTopologySettingsChanged(`${accepted}\ninclude 'other.conf'`, `${accepted}\ninclude 'other.conf'`), false);
  });
});
