import { strict as assert } from 'node:assert';
import { resolveInitdb, unsupportedByServer } from '../../src/cluster/initdb.js';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import type { ConfigError } from '../../src/errors/index.js';
import { errorOf } from '../support/config-error.js';
import { normalizeInitdbOptions } from '../../src/options/initdb-options.js';

const manifest = (initdb: string): string =>
  `apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: pg\nspec:\n  instances: 1\n  bootstrap:\n    initdb:\n${initdb.replace(/^/gm, '      ')}\n`;

const refusal = (initdb: string): ConfigError => errorOf(() => parseClusterManifest(manifest(initdb), 'cluster.yaml'));

describe('bootstrap.initdb options (CNPG buildInitDBFlags)', () => {
  it("pgim's defaults are CNPG's documented ones: UTF8 and the C locale", () => {
    assert.deepEqual(resolveInitdb(undefined).options, ['--encoding=UTF8', '--lc-collate=C', '--lc-ctype=C']);
  });

  it('the explicit fields become the options CNPG generates, in its order; a locale replaces the C defaults', () => {
    const spec = resolveInitdb({ dataChecksums: true, encoding: 'UTF8', locale: 'C.UTF-8', localeProvider: 'icu', icuLocale: 'en-US', walSegmentSize: 64 });
    assert.deepEqual(spec.options, ['--data-checksums', '--encoding=UTF8', '--locale=C.UTF-8', '--locale-provider=icu', '--icu-locale=en-US', '--wal-segsize=64']);
    assert.deepEqual(resolveInitdb({ localeCollate: 'C.UTF-8' }).options, ['--encoding=UTF8', '--lc-ctype=C', '--lc-collate=C.UTF-8']);
  });

  it('options (deprecated) win over the explicit fields, as in CNPG, and name what they override', () => {
    const spec = resolveInitdb({ options: ['-k', '-E', 'SQL_ASCII', '--locale', 'C.UTF-8'], encoding: 'UTF8', dataChecksums: false });
    assert.deepEqual(spec.options, ['--data-checksums', '--encoding=SQL_ASCII', '--locale=C.UTF-8']);
    assert.deepEqual(spec.overridden, ['spec.bootstrap.initdb.dataChecksums', 'spec.bootstrap.initdb.encoding']);
  });

  it('refuses the initdb options that would undo what pgim sets, naming the option', () => {
    for (const bad of [['-D', '/x'], ['--pgdata=/x'], ['-U', 'bob'], ['--auth=trust'], ['--waldir=/w'], ['-g'], ['--no-sync'], ['--no-clean'], ['--pwfile=/p']]) {
      assert.throws(() => normalizeInitdbOptions(bad), (err: Error) => err.message.startsWith(`"${bad[0] ?? ''}" is not an initdb option pgim passes on`));
    }
    assert.throws(() => normalizeInitdbOptions(['--encoding']), /needs a value/);
    assert.equal(refusal("options: ['--waldir=/w']").field, 'spec.bootstrap.initdb.options');
  });

  it("CNPG's rules: each provider's locale only with that provider; WAL segments a power of 2 up to 1024", () => {
    assert.equal(refusal('icuLocale: en-US').field, 'spec.bootstrap.initdb.icuLocale');
    assert.equal(refusal('localeProvider: libc\nicuRules: "&a < b"').field, 'spec.bootstrap.initdb.icuRules');
    assert.equal(refusal('builtinLocale: C.UTF-8\nlocaleProvider: icu').field, 'spec.bootstrap.initdb.builtinLocale');
    assert.equal(refusal('localeProvider: nls').field, 'spec.bootstrap.initdb.localeProvider');
    assert.equal(refusal('walSegmentSize: 48').field, 'spec.bootstrap.initdb.walSegmentSize');
    assert.equal(refusal('walSegmentSize: 2048').field, 'spec.bootstrap.initdb.walSegmentSize');
    assert.equal(refusal('postInitSQLRefs:\n  secretRefs: [{name: s}]').field, 'spec.bootstrap.initdb.postInitSQLRefs.secretRefs[0].key');
  });

  it('what the server version cannot do is named by field (builtin: 17, ICU rules: 16)', () => {
    const builtin = resolveInitdb({ localeProvider: 'builtin', builtinLocale: 'C.UTF-8' });
    assert.deepEqual(unsupportedByServer(builtin, 15), { field: 'spec.bootstrap.initdb.builtinLocale', message: 'needs PostgreSQL 17 or later; the server binaries are PostgreSQL 15' });
    assert.equal(unsupportedByServer(builtin, 17), undefined);
    assert.equal(unsupportedByServer(resolveInitdb({ localeProvider: 'icu', icuRules: '&a < b' }), 15)?.field, 'spec.bootstrap.initdb.icuRules');
    assert.equal(unsupportedByServer(resolveInitdb({ options: ['--icu-rules=&a < b'] }), 15)?.field, 'spec.bootstrap.initdb.options (--icu-rules)');
    assert.equal(unsupportedByServer(resolveInitdb({ localeProvider: 'icu', icuLocale: 'en' }), 15), undefined, 'ICU itself is PostgreSQL 15');
  });

  it('post-init SQL per database: inline queries, then Secrets, then ConfigMaps (CNPG pkg/specs/volumes.go)', () => {
    const { postInit } = resolveInitdb({
      postInitSQL: ['A'],
      postInitApplicationSQLRefs: { configMapRefs: [{ name: 'cm', key: 'k1' }], secretRefs: [{ name: 's', key: 'k2' }] },
    });
    assert.deepEqual(postInit.postgres, { field: 'spec.bootstrap.initdb.postInitSQL', queries: ['A'], refs: [] });
    assert.deepEqual(postInit.application.refs, [
      { kind: 'Secret', name: 's', key: 'k2', field: 'spec.bootstrap.initdb.postInitApplicationSQLRefs.secretRefs[0]' },
      { kind: 'ConfigMap', name: 'cm', key: 'k1', field: 'spec.bootstrap.initdb.postInitApplicationSQLRefs.configMapRefs[0]' },
    ]);
  });
});
