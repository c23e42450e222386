"""A gateway with one custom filter, in Python (examples/python/README.md)."""
import urllib.request

import portico


@portico.filter("tenant")
def tenant(request):
    key = request.header("X-Api-Key")
    if key is None:
        return portico.Response(401, "missing X-Api-Key\n")
    request.set_header("X-Tenant", key.split(".")[0])


@portico.handler("hello")
def hello(request):
    return f"hello, {request.header('X-Tenant')}\n"


config = {"services": [{"name": "hello", "handler": "hello"}],
          "routes": [{"name": "all", "paths": ["/**"], "service": "hello"}],
          "plugins": [{"name": "tenant"}], "access_log": {"enabled": False}}

with portico.Gateway(config, filters=[tenant], handlers=[hello], port=0, admin_port=0) as gw:
    url = f"http://127.0.0.1:{gw.port()}/"
    print(urllib.request.urlopen(urllib.request.Request(url, headers={"X-Api-Key": "acme.42"})).read())
