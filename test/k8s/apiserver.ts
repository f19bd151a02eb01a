// Moved to test-kit/ (bench's cnpg system runs its own API server too); kept here so test/ imports stay as they are.
export * from '../../test-kit/k8s-apiserver.js';
