# The collection's shared code, one package per concern:
#   core/       the module base (options, one failure message), the HTTP client, errors, waiting, diffs,
#               checks of names and connector templates
#   mlcommons/  ML Commons' objects: lookups and writes (resource), its answers, models and their
#               deployment, connectors and their users, cluster settings
#   batch/      batch jobs: identity, status, submitting and following them
#   files/      local files: streamed reads and writes, batch inputs checked, split and merged
#   index/      documents of an index: read (scroll, _mget), written (_bulk), as batch inputs and back from outputs
