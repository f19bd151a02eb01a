// ESLint flat config: typescript-eslint strictTypeChecked, eslint-plugin-security, eslint-plugin-n; zero warnings.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import security from 'eslint-plugin-security';
import nodePlugin from 'eslint-plugin-n';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.pgim/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  security.configs.recommended,
  // Node API hygiene (deprecated APIs, builtins newer than package.json's engines, process.exit, shebangs), adapted
  // to TypeScript ESM: the rules see each .ts file as the dist/ .js file it compiles to, so package.json's "bin"
  // (dist/cmd/pgim.js) explains cmd/pgim.ts's shebang and "files" tells published from unpublished code.
  nodePlugin.configs['flat/recommended-module'],
  {
    settings: {
      n: {
        tryExtensions: ['.ts', '.js', '.json', '.node'],
        convertPath: [{ include: ['cmd/**/*.ts', 'src/**/*.ts'], replace: ['^(.+)\\.ts$', 'dist/$1.js'] }],
      },
    },
    rules: {
      // Global fetch is on by default and warning-free on Node 20 (engines >=20.19); the plugin calls it
      // experimental until 21 only because Node 20's docs still said so.
      'n/no-unsupported-features/node-builtins': ['error', { ignores: ['fetch'] }],
    },
  },
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // Paths here are built from validated config, never from raw request input; the rule flags every fs call.
      'security/detect-non-literal-fs-filename': 'off',
      // Index access on records is typed (noUncheckedIndexedAccess); this rule cannot see that.
      'security/detect-object-injection': 'off',
    },
  },
  {
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { parserOptions: { projectService: false, project: null }, sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly' } },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Plain-JavaScript scripts that lint runs before any build (scripts/check-layers.mjs).
    files: ['scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { parserOptions: { projectService: false, project: null }, sourceType: 'module', globals: { console: 'readonly', process: 'readonly' } },
  },
  {
    files: ['test/**/*.ts', 'test-kit/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // The benchmark is a command-line program whose exit code is its result; the daemon (src/, cmd/) sets
    // process.exitCode and never calls process.exit.
    files: ['bench/**/*.ts'],
    rules: { 'n/no-process-exit': 'off' },
  },
);
