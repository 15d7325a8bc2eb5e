#!/usr/bin/env python3
"""Fails when modules inside one crate import each other in a cycle.

For every `crate::…`, `super::…` and `use crate::{…}` path outside comments and test modules,
the edge is taken between the two sibling modules under the paths' lowest common ancestor
(a child using its parent's items is not a cycle). Strongly connected components of more than
one module are printed with their edges, and the exit status is 1.

Usage: .ci/module_cycles.py CRATE_DIR...
"""
import os,re,sys
from collections import defaultdict
def mods(src):
    m={}
    for root,_,files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            p=os.path.join(root,f); rel=os.path.relpath(p,src)[:-3].split(os.sep)
            if rel[-1] in('mod','lib','main'): rel=rel[:-1]
            if rel and rel[-1]=='tests': continue
            m[tuple(rel)]=p
    return m
def resolve(ms,path):
    for i in range(len(path),-1,-1):
        if tuple(path[:i]) in ms: return tuple(path[:i])
    return ()
found=False
for crate in sys.argv[1:]:
    src=os.path.join(crate,'src'); ms=mods(src); edges=defaultdict(set)
    for mod,p in ms.items():
        txt=open(p).read()
        # drop cfg(test) mod bodies roughly
        i=txt.find('#[cfg(test)]\nmod tests')
        if i>=0: txt=txt[:i]
        txt=re.sub(r'//[^\n]*','',txt)
        refs=[]
        for r in re.findall(r'\bcrate((?:::\w+)+)',txt): refs.append(r.split('::')[1:])
        for r in re.findall(r'\b((?:super::)+)((?:\w+::)*\w+)',txt):
            up=r[0].count('super::'); base=list(mod[:len(mod)-up]) if up<=len(mod) else []
            refs.append(base+r[1].split('::'))
        # use super::{a,b}
        for r in re.findall(r'\buse ((?:super::)+)\{([^}]*)\}',txt):
            up=r[0].count('super::'); base=list(mod[:len(mod)-up])
            for n in r[1].split(','):
                n=n.strip().split('::')[0]
                if n: refs.append(base+[n])
        for r in re.findall(r'\buse crate::\{([^}]*)\}',txt):
            for n in re.split(r'[,{}]',r):
                n=n.strip()
                if n: refs.append(n.split('::'))
        for r in refs:
            t=resolve(ms,r)
            a,b=mod,t; k=0
            while k<min(len(a),len(b)) and a[k]==b[k]: k+=1
            if k<len(a) and k<len(b):
                edges[a[:k+1]].add(b[:k+1])
    # find cycles of length 2+ via SCC
    idx={};low={};st=[];on=set();out=[];c=[0]
    nodes=set(edges)|{x for v in edges.values() for x in v}
    sys.setrecursionlimit(10000)
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges.get(v,()):
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: out.append(comp)
    for n in nodes:
        if n not in idx: sc(n)
    for comp in out:
        found=True
        print(crate,'cycle:',[ '::'.join(x) for x in comp])
        for a in comp:
            for b in edges[a]:
                if b in comp: print('   ','::'.join(a),'->','::'.join(b))
sys.exit(1 if found else 0)
