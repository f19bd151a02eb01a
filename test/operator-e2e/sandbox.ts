// Moved to test-kit/ (bench's cnpg system runs CloudNativePG's manager in the same kind of sandbox).
export * from '../../test-kit/sandbox.js';
