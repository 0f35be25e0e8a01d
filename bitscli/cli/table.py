"""The command table: every command's name and the module under bitscli.cli that defines it."""

from __future__ import annotations

# Command name -> the module under bitscli.cli that defines it. Only the module of the command being
# run is imported, so `bitscli getstate` never pays for the setters, views or transfer code (pip's
# commands_dict does the same). tests/test_structure.py keeps this table and the modules in sync.
_JOBS = ("create", "addfile", "addfileset", "addfilewithranges", "replaceremoteprefix", "resume", "suspend",
         "cancel", "complete", "reset")  # fmt: skip
_VIEWS = ("info", "list", "listfiles", "monitor")
GETTERS = (
    "getstate", "gettype", "getpriority", "getbytestotal", "getbytestransferred", "getfilestotal",
    "getfilestransferred", "getcreationtime", "getmodificationtime", "getcompletiontime", "geterror",
    "geterrorcount", "getowner", "getdisplayname", "getdescription", "getnotifyflags", "getnotifyinterface",
    "getnotifycmdline", "getminretrydelay", "getnoprogresstimeout", "getmaxdownloadtime", "getproxyusage",
    "getproxylist", "getproxybypasslist", "getsecurityflags", "gethttpmethod", "getaclflags", "getdynamic",
    "getreplyfilename", "getcustomheaders", "getvalidationstate", "gettemporaryname", "getcabundle",
    "getclientcertificate", "getmaxbandwidth", "getstartjitter",
)  # fmt: skip
SETTERS = (
    "setdisplayname", "setdescription", "setpriority", "setnotifyflags", "setminretrydelay",
    "setnoprogresstimeout", "setmaxdownloadtime", "setsecurityflags", "sethttpmethod", "setaclflags",
    "setdynamic", "setreplyfilename", "setnotifycmdline", "setproxysettings", "setcredentials",
    "removecredentials", "setcustomheaders", "makecustomheaderswriteonly", "setvalidationstate", "setcabundle",
    "setclientcertificate", "setmaxbandwidth", "setstartjitter",
)  # fmt: skip
# The commands BitsAdmin itself has, whose /SWITCH spellings completion offers.
BITSADMIN_COMMANDS = (*_JOBS, *_VIEWS, *GETTERS, *SETTERS, "transfer", "getreplydata", "getreplyprogress")
COMMANDS: dict[str, str] = {
    **dict.fromkeys(_JOBS, "jobs"),
    **dict.fromkeys(_VIEWS, "views"),
    **dict.fromkeys(GETTERS, "getters"),
    **dict.fromkeys(SETTERS, "setters"),
    "completion": "completion",
    "__complete": "completion_words",  # hidden: the completion scripts ask it for arguments
    "manpage": "manpage",
    "config": "config",
    "queue": "queue",
    "daemon": "daemon",
    "transfer": "transfer",
    "wait": "transfer",
    "getreplydata": "getters",
    "getifchanged": "getters",
    "events": "events",
    "setifchanged": "setters",
    "getreplyprogress": "getters",
    "serve": "serve",
    "serve-passwd": "serve",
}
