import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'gen/', 'coverage/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'describe', property: 'only', message: 'Focused tests must not land.' },
        { object: 'it', property: 'only', message: 'Focused tests must not land.' },
        { object: 'test', property: 'only', message: 'Focused tests must not land.' },
        { object: 'describe', property: 'skip', message: 'Skipped tests must not land.' },
        { object: 'it', property: 'skip', message: 'Skipped tests must not land.' },
        { object: 'test', property: 'skip', message: 'Skipped tests must not land.' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'fit', message: 'Focused tests must not land.' },
        { name: 'fdescribe', message: 'Focused tests must not land.' },
        { name: 'xit', message: 'Skipped tests must not land.' },
        { name: 'xdescribe', message: 'Skipped tests must not land.' },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
