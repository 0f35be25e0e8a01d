"""The compact server (`bitscli serve`): ranged downloads and BITS uploads, Starlette on uvicorn/h11."""
