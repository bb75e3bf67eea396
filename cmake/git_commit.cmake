# Writes OUT (a header defining TIERSERVE_GIT_COMMIT) with the commit the
# source tree SRC is at: `git rev-parse --short=12 HEAD`, "+dirty" when the
# tracked files differ from it; the environment's TIERSERVE_GIT_COMMIT when
# SRC is not a git checkout (a container build's context has no .git), else
# "unknown". Rewrites OUT only when the text changes, so a build at the same
# commit recompiles nothing. Run at every build: cmake -DSRC=... -DOUT=... -P.
set(commit "")
find_program(GIT git)
if(GIT AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT}" rev-parse --short=12 HEAD WORKING_DIRECTORY "${SRC}"
                  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    set(commit "")
  elseif(commit)
    execute_process(COMMAND "${GIT}" diff-index --quiet HEAD -- WORKING_DIRECTORY "${SRC}"
                    RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      string(APPEND commit "+dirty")
    endif()
  endif()
endif()
if(NOT commit AND DEFINED ENV{TIERSERVE_GIT_COMMIT})
  set(commit "$ENV{TIERSERVE_GIT_COMMIT}")
endif()
if(NOT commit OR NOT commit MATCHES "^[A-Za-z0-9+._-]+$")
  set(commit "unknown")
endif()
set(text "#define TIERSERVE_GIT_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
