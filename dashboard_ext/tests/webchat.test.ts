import { describe, expect, it } from 'vitest'
import {
  buttonClasses,
  chatPath,
  isCloseMessage,
  isLiveCommand,
  labelsFor,
  liveFrameUrl,
  liveLinkConversation,
  parseChatRoute,
  reloadDetour,
  themeClass,
} from '../src/webchat/logic'

const LIVE = 'http://127.0.0.1:6185/live/'

describe('webchat routes', () => {
  it('reads WebChat views and their conversation from the hash', () => {
    expect(parseChatRoute('#/chat')).toEqual({ view: 'chat', conversationId: null })
    expect(parseChatRoute('#/chat/')).toEqual({ view: 'chat', conversationId: null })
    expect(parseChatRoute('#/chat/5ae1-c8')).toEqual({ view: 'chat', conversationId: '5ae1-c8' })
    expect(parseChatRoute('#/chat/abc?live=1')).toEqual({ view: 'chat', conversationId: 'abc' })
    expect(parseChatRoute('#/chatbox/a%20b')).toEqual({ view: 'chatbox', conversationId: 'a b' })
  })

  it('is not a chat route anywhere else', () => {
    for (const hash of ['', '#/', '#/auth/login', '#/chats', '#/chat/a/b', '#/plugin-view/x/chat', '#/chat/%E0']) {
      expect(parseChatRoute(hash), hash).toBeNull()
    }
  })

  it('reloads a conversation by a detour through the other chat view, ending where it was', () => {
    expect(reloadDetour('chat', 'c1')).toEqual(['/chatbox/c1', '/chat/c1'])
    expect(reloadDetour('chatbox', 'c1')).toEqual(['/chat/c1', '/chatbox/c1'])
    expect(chatPath('chat', 'a/b')).toBe('/chat/a%2Fb')
  })
})

describe('webchat labels', () => {
  it('speaks the host UI language, Chinese by default as the host does', () => {
    expect(labelsFor('en-US')).toEqual({ open: 'Live Mode', close: 'Close', title: 'Live Mode' })
    expect(labelsFor('ja-JP').open).toBe('Live Mode')
    expect(labelsFor('zh-CN').open).toBe('实时对话')
    expect(labelsFor('zh-TW').close).toBe('关闭')
    expect(labelsFor(null).open).toBe('实时对话')
    expect(labelsFor('').open).toBe('实时对话')
  })
})

describe('webchat live page links', () => {
  it('opens the Live page bound to the conversation, in its embedded mode', () => {
    expect(liveFrameUrl(LIVE, 'c 1')).toBe(`${LIVE}?conversation_id=c+1&embed=webchat`)
    expect(liveFrameUrl('https://h/proxy/live/', null)).toBe('https://h/proxy/live/?embed=webchat')
  })

  it('recognises the /live command link on this origin, relative or absolute', () => {
    expect(liveLinkConversation('/live/?conversation_id=abc', LIVE)).toBe('abc')
    expect(liveLinkConversation(`${LIVE}?conversation_id=abc&x=1`, LIVE)).toBe('abc')
  })

  it('leaves every other link alone', () => {
    for (const href of [
      'https://evil.example/live/?conversation_id=abc', // another origin
      '/live/', // no conversation
      '/live/overlay?conversation_id=abc', // another page
      '/live/?room=stream&conversation_id=abc', // a room
      '/docs/?conversation_id=abc',
      'http://[bad',
    ]) {
      expect(liveLinkConversation(href, LIVE), href).toBeNull()
    }
  })

  it('closes only on the Live page close message', () => {
    expect(isCloseMessage({ source: 'astrbot-live', type: 'close' })).toBe(true)
    expect(isCloseMessage({ source: 'astrbot-live', type: 'open' })).toBe(false)
    expect(isCloseMessage({ source: 'other', type: 'close' })).toBe(false)
    expect(isCloseMessage('close')).toBe(false)
    expect(isCloseMessage(null)).toBe(false)
  })
})

describe('webchat button look', () => {
  const mic = 'v-btn v-btn--icon v-theme--PurpleThemeDark v-btn--density-default v-btn--variant-text record-btn input-icon-btn'

  it("copies the host icon button's classes, without its recording or disabled state", () => {
    const classes = buttonClasses(`${mic} recording v-btn--disabled v-btn--loading`.split(' '), 'astrbot-live-mode-btn')
    expect(classes).toEqual([
      'v-btn', 'v-btn--icon', 'v-theme--PurpleThemeDark', 'v-btn--density-default', 'v-btn--variant-text',
      'input-icon-btn', 'astrbot-live-mode-btn',
    ]) // prettier-ignore
    expect(buttonClasses(classes, 'astrbot-live-mode-btn')).toEqual(classes) // stable when synced again
  })

  it("finds the host's theme class", () => {
    expect(themeClass(mic.split(' '))).toBe('v-theme--PurpleThemeDark')
    expect(themeClass(['v-btn'])).toBeNull()
  })

  it('knows the /live command as typed', () => {
    expect(isLiveCommand('/live')).toBe(true)
    expect(isLiveCommand(' /live \n')).toBe(true)
    expect(isLiveCommand('/live now')).toBe(false)
    expect(isLiveCommand('/liveX')).toBe(false)
  })
})
