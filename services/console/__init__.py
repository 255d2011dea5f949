"""The council operators' console: sign-in, keys, privacy operations and service operations in a browser."""
